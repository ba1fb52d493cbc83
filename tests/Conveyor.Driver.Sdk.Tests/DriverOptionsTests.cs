namespace Conveyor.Driver.Sdk.Tests;

public sealed class DriverOptionsTests
{
    [Theory]
    [InlineData(null, "app", "Name")]
    [InlineData("", "app", "Name")]
    [InlineData("Builder", "app", "Name")]
    [InlineData("build.er", "app", "Name")]
    [InlineData("-builder", "app", "Name")]
    [InlineData("builder", "", "Resources")]
    [InlineData("builder", "apps.>", "Resources")]
    public void Invalid_names_are_rejected_naming_the_field(string? name, string resource, string field)
    {
        var options = new DriverOptions { Name = name, Resources = resource.Length == 0 ? [] : [resource] };

        var error = Assert.Throws<DriverConfigurationException>(options.Validate);

        Assert.Equal(field, error.Field);
        Assert.StartsWith(field + ":", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Out_of_range_limits_are_rejected_naming_the_field()
    {
        Assert.Equal("MaxConcurrency", Assert.Throws<DriverConfigurationException>(Valid(o => o.MaxConcurrency = 0).Validate).Field);
        Assert.Equal("AckWait", Assert.Throws<DriverConfigurationException>(Valid(o => o.AckWait = TimeSpan.Zero).Validate).Field);
        Assert.Equal("NatsUrl", Assert.Throws<DriverConfigurationException>(Valid(o => o.NatsUrl = " ").Validate).Field);
        Assert.Equal("MaxAckPending", Assert.Throws<DriverConfigurationException>(Valid(o => o.MaxAckPending = 0).Validate).Field);
        Assert.Equal("ShutdownGracePeriod", Assert.Throws<DriverConfigurationException>(Valid(o => o.ShutdownGracePeriod = TimeSpan.FromSeconds(-1)).Validate).Field);
    }

    [Fact]
    public void Defaults_match_the_documented_values()
    {
        var options = new DriverOptions();

        Assert.Equal("nats://127.0.0.1:4222", options.NatsUrl);
        Assert.Equal(4, options.MaxConcurrency);
        Assert.Equal(TimeSpan.FromSeconds(30), options.AckWait);
        Assert.Equal(TimeSpan.FromSeconds(10), options.ShutdownGracePeriod);
    }

    [Fact]
    public async Task Manager_takes_name_and_resources_from_the_driver_when_options_leave_them_empty()
    {
        await using var manager = new DriverManager(new Infrastructure.TestDriver("builder", "app", "lib"), new DriverOptions());

        Assert.Equal("builder", manager.Name);
        Assert.Equal(["app", "lib"], manager.Resources);
        Assert.Equal(["builder-steps-app", "builder-resources-app", "builder-steps-lib", "builder-resources-lib"], manager.ConsumerNames);
    }

    [Fact]
    public void Manager_rejects_invalid_options_before_connecting()
    {
        var error = Assert.Throws<DriverConfigurationException>(() => new DriverManager(new Infrastructure.TestDriver("Bad Name"), new DriverOptions()));

        Assert.Equal("Name", error.Field);
    }

    [Fact]
    public void Secrets_are_redacted_when_options_are_logged()
    {
        var text = Valid(o =>
        {
            o.NatsPassword = "hunter2";
            o.NatsToken = "s3cret";
        }).ToString();

        Assert.DoesNotContain("hunter2", text, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret", text, StringComparison.Ordinal);
    }

    private static DriverOptions Valid(Action<DriverOptions> change)
    {
        var options = new DriverOptions { Name = "builder", Resources = ["app"] };
        change(options);
        return options;
    }
}
