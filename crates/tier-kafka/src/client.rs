//! The one place librdkafka clients are configured: the bootstrap servers
//! and the operator's extra settings (`--kafka key=value`: SASL, TLS, ...)
//! go into every client the same way, so a consumer, a producer and the
//! admin client can never disagree on how to reach the cluster.

use rdkafka::ClientConfig;

/// A client configuration for `brokers` with tierd's `defaults` for this
/// client, then the operator's `extra` settings (which win).
pub fn client_config(
    brokers: &str,
    defaults: &[(&str, &str)],
    extra: &[(String, String)],
) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", brokers);
    for (k, v) in defaults {
        cc.set(*k, *v);
    }
    for (k, v) in extra {
        cc.set(k, v);
    }
    cc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_settings_win_over_defaults() {
        let cc = client_config(
            "b:9092",
            &[("acks", "all"), ("linger.ms", "5")],
            &[
                ("linger.ms".into(), "20".into()),
                ("security.protocol".into(), "SASL_SSL".into()),
            ],
        );
        assert_eq!(cc.get("bootstrap.servers"), Some("b:9092"));
        assert_eq!(cc.get("acks"), Some("all"));
        assert_eq!(cc.get("linger.ms"), Some("20"));
        assert_eq!(cc.get("security.protocol"), Some("SASL_SSL"));
    }
}
