using System.Security.Cryptography;
using System.Text;
using Conveyor.Grains.Abstractions;
using Conveyor.Grains.Security;
using Microsoft.Extensions.Options;

namespace Conveyor.UnitTests;

/// <summary>The secrets key ring (rotation without a 500) and the step token's lifetime rule, on a clock of the test's own.</summary>
public sealed class SecretKeyRingTests
{
    private static readonly string Old = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
    private static readonly string New = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    private sealed class Clock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static SecretProtector Protector(ConveyorSecretsOptions options, TimeProvider? time = null) => new(Options.Create(options), time ?? TimeProvider.System);

    [Fact]
    public void Values_name_their_key_and_still_decrypt_after_a_new_primary_key_is_added()
    {
        var before = Protector(new ConveyorSecretsOptions { Key = Old });
        var stored = before.Encrypt("team", "DB_PASSWORD", "hunter2");
        Assert.Equal(SecretProtector.DefaultKeyId, stored.KeyId);

        var rotated = Protector(new ConveyorSecretsOptions { Key = Old, Keys = { ["2026-12"] = New }, PrimaryKeyId = "2026-12" });
        Assert.Equal("hunter2", rotated.Decrypt("team", "DB_PASSWORD", stored.Blob, stored.KeyId));
        Assert.Equal("hunter2", rotated.Decrypt("team", "DB_PASSWORD", stored.Blob, null));
        var moved = rotated.Encrypt("team", "DB_PASSWORD", "hunter2");
        Assert.Equal("2026-12", moved.KeyId);

        var after = Protector(new ConveyorSecretsOptions { Keys = { ["2026-12"] = New } });
        Assert.Equal("hunter2", after.Decrypt("team", "DB_PASSWORD", moved.Blob, moved.KeyId));
    }

    [Fact]
    public void A_missing_or_changed_key_is_a_conflict_naming_the_key_not_a_crash()
    {
        var stored = Protector(new ConveyorSecretsOptions { Key = Old }).Encrypt("team", "DB_PASSWORD", "hunter2");

        var missing = Assert.Throws<ConveyorConflictException>(() => Protector(new ConveyorSecretsOptions { Keys = { ["2026-12"] = New } }).Decrypt("team", "DB_PASSWORD", stored.Blob, stored.KeyId));
        Assert.Contains("key 'default'", missing.Message, StringComparison.Ordinal);
        var changed = Assert.Throws<ConveyorConflictException>(() => Protector(new ConveyorSecretsOptions { Key = New }).Decrypt("team", "DB_PASSWORD", stored.Blob, stored.KeyId));
        Assert.Contains("does not decrypt with key 'default'", changed.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => Protector(new ConveyorSecretsOptions { Keys = { ["a"] = Old, ["b"] = New } }).Encrypt("n", "x", "v"));
        Assert.Throws<InvalidOperationException>(() => Protector(new ConveyorSecretsOptions { Keys = { ["Not_An_Id"] = Old } }).Encrypt("n", "x", "v"));
    }

    [Theory]
    [InlineData("deploy")]
    [InlineData("build[3]")]
    [InlineData(null)] // a step id longer than the stack buffer the token is usually built in
    public void A_step_token_is_the_prefix_its_claims_and_their_mac_in_unpadded_base64url(string? step)
    {
        step ??= new string('s', 400);
        var clock = new Clock(new DateTimeOffset(2026, 12, 5, 12, 0, 0, TimeSpan.Zero));
        var run = Guid.NewGuid();
        var token = Protector(new ConveyorSecretsOptions { Key = Old }, clock).MintStepToken(run, step, 7, TimeSpan.FromSeconds(90))!;

        var match = System.Text.RegularExpressions.Regex.Match(token, "^cvs1\\.([A-Za-z0-9_-]+)\\.([A-Za-z0-9_-]{43})$");
        Assert.True(match.Success, token);
        var payload = match.Groups[1].Value.Replace('-', '+').Replace('_', '/');
        payload = payload.PadRight(payload.Length + ((4 - (payload.Length % 4)) % 4), '=');
        Assert.Equal($"{run:D}|{step}|7|{clock.Now.AddSeconds(90).ToUnixTimeSeconds()}", Encoding.UTF8.GetString(Convert.FromBase64String(payload)));
    }

    [Fact]
    public void A_step_token_lives_no_longer_than_its_attempt_and_survives_a_rotation()
    {
        var clock = new Clock(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
        var protector = Protector(new ConveyorSecretsOptions { Key = Old }, clock);
        var run = Guid.NewGuid();

        var bounded = protector.MintStepToken(run, "deploy", 2, attemptTimeout: TimeSpan.FromSeconds(30));
        Assert.True(protector.TryVerifyStepToken(bounded, out var claims));
        Assert.Equal(clock.Now.AddSeconds(30), claims!.ExpiresAt);
        Assert.Equal(("deploy", 2), (claims.Step, claims.Attempt));

        var unbounded = protector.MintStepToken(run, "deploy", 2);
        Assert.True(protector.TryVerifyStepToken(unbounded, out var longest));
        Assert.Equal(clock.Now.AddMinutes(15), longest!.ExpiresAt);
        var longTimeout = protector.MintStepToken(run, "deploy", 2, attemptTimeout: TimeSpan.FromHours(3));
        Assert.True(protector.TryVerifyStepToken(longTimeout, out var capped));
        Assert.Equal(clock.Now.AddMinutes(15), capped!.ExpiresAt);

        // Signed by the old primary key, still accepted once a new one is primary.
        var rotated = Protector(new ConveyorSecretsOptions { Key = Old, Keys = { ["2026-12"] = New }, PrimaryKeyId = "2026-12" }, clock);
        Assert.True(rotated.TryVerifyStepToken(bounded, out _));
        Assert.False(Protector(new ConveyorSecretsOptions { Key = New }, clock).TryVerifyStepToken(bounded, out _));

        clock.Now = clock.Now.AddSeconds(31);
        Assert.False(protector.TryVerifyStepToken(bounded, out _));
        Assert.True(protector.TryVerifyStepToken(unbounded, out _));
    }
}
