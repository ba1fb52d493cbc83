using Microsoft.Extensions.Hosting;
using StackExchange.Redis;

namespace Conveyor.UnitTests;

/// <summary>How the silo connects to Redis: where replies are completed depends on whether Sentinel is in charge.</summary>
public sealed class RedisConnectionTests
{
    [Theory]
    [InlineData("127.0.0.1:6379")]
    [InlineData("127.0.0.1:6379,password=secret,ssl=false")]
    public void A_plain_redis_completes_replies_on_the_thread_pool(string connectionString)
    {
        var options = ConveyorSiloBuilderExtensions.ParseRedis(connectionString);

        Assert.Same(SocketManager.ThreadPool, options.SocketManager);
        Assert.False(options.AbortOnConnectFail);
    }

    [Fact]
    public void A_sentinel_connection_keeps_the_dedicated_reader_threads()
    {
        // The library's Sentinel failover waits synchronously for replies on pool threads; those replies must not need the pool.
        var options = ConveyorSiloBuilderExtensions.ParseRedis("127.0.0.1:26379,127.0.0.1:26380,serviceName=conveyor");

        Assert.Equal("conveyor", options.ServiceName);
        Assert.Same(SocketManager.Shared, options.SocketManager);
        Assert.False(options.AbortOnConnectFail);
    }
}
