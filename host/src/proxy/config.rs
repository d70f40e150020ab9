//! The gateway configuration file (`porin gateway -c FILE`).
//!
//! ```yaml
//! listeners:
//!   - name: api
//!     listen: 127.0.0.1:8080
//!     upstream: 127.0.0.1:80
//!     protocol: tcp            # or udp
//!     filter: http
//!     rules:                   # a policy's `toPorts[].rules` object
//!       http:
//!         - method: GET
//!           path: "/public/.*"
//!     source: {identity: 258, namespace: frontend, pod: web, labels: ["k8s:app=web"]}
//! limits: {workers: 2, connect_timeout: 5s, idle_timeout: 300s}
//! filters_dir: /var/lib/porin/filters   # extra .wasm modules, named after their files
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Limits, Transport};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub filters_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    #[serde(default)]
    pub name: Option<String>,
    pub listen: String,
    pub upstream: String,
    #[serde(default = "default_protocol")]
    pub protocol: Transport,
    pub filter: String,
    /// The rules object, as in a policy (`http: [...]`, `l7proto: ...`).
    #[serde(default)]
    pub rules: serde_json::Value,
    #[serde(default)]
    pub source: PeerConfig,
    #[serde(default)]
    pub destination: PeerConfig,
}

fn default_protocol() -> Transport {
    Transport::Tcp
}

/// What the filter is told about one side.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    #[serde(default)]
    pub identity: u32,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub pod: String,
    #[serde(default)]
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub workers: Option<usize>,
    pub max_connections: Option<usize>,
    pub connect_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub header_timeout: Option<String>,
    pub drain_timeout: Option<String>,
    pub udp_flow_timeout: Option<String>,
}

/// A problem in the configuration, naming where.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

fn error(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError { field: field.into(), message: message.into() }
}

/// Parses `250ms`, `5s`, `2m`, `1h`.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    Some(match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.checked_mul(60)?),
        "h" => Duration::from_secs(number.checked_mul(3600)?),
        _ => return None,
    })
}

impl GatewayConfig {
    pub fn parse(text: &str) -> Result<GatewayConfig, ConfigError> {
        let config: GatewayConfig =
            serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text))
                .map_err(|err| error(err.path().to_string(), err.into_inner().to_string()))?;
        if config.listeners.is_empty() {
            return Err(error("listeners", "at least one listener is needed"));
        }
        for (i, listener) in config.listeners.iter().enumerate() {
            if !listener.rules.is_object() && !listener.rules.is_null() {
                return Err(error(
                    format!("listeners[{i}].rules"),
                    "expected a rules object, e.g. `http: [...]`",
                ));
            }
        }
        Ok(config)
    }

    pub fn limits(&self) -> Result<Limits, ConfigError> {
        let mut limits = Limits::default();
        let l = &self.limits;
        limits.workers = l.workers.unwrap_or(limits.workers).max(1);
        limits.max_connections = l.max_connections.unwrap_or(limits.max_connections);
        for (name, text, target) in [
            ("connect_timeout", &l.connect_timeout, &mut limits.connect_timeout),
            ("idle_timeout", &l.idle_timeout, &mut limits.idle_timeout),
            ("header_timeout", &l.header_timeout, &mut limits.header_timeout),
            ("drain_timeout", &l.drain_timeout, &mut limits.drain_timeout),
            ("udp_flow_timeout", &l.udp_flow_timeout, &mut limits.udp_flow_timeout),
        ] {
            if let Some(text) = text {
                *target = parse_duration(text).ok_or_else(|| {
                    error(format!("limits.{name}"), format!("invalid duration `{text}`; e.g. 250ms, 5s, 2m"))
                })?;
            }
        }
        Ok(limits)
    }
}

impl ListenerConfig {
    /// The listener's name: given, or `listen` address.
    pub fn display_name(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("listeners[{index}] ({})", self.listen))
    }

    pub fn listen_addr(&self, index: usize) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            error(format!("listeners[{index}].listen"), format!("`{}` is not an address:port", self.listen))
        })
    }

    /// Resolves `upstream` (an address or host name, with port).
    pub fn upstream_addr(&self, index: usize) -> Result<SocketAddr, ConfigError> {
        let field = format!("listeners[{index}].upstream");
        self.upstream
            .to_socket_addrs()
            .map_err(|err| error(&field, format!("cannot resolve `{}`: {err}", self.upstream)))?
            .next()
            .ok_or_else(|| error(&field, format!("`{}` resolves to no address", self.upstream)))
    }

    /// The rule set JSON for the filter.
    pub fn rules_json(&self) -> String {
        if self.rules.is_null() { "{}".to_string() } else { self.rules.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_gateway_file_and_rejects_typos() {
        let config = GatewayConfig::parse(
            "listeners:\n  - listen: 127.0.0.1:0\n    upstream: 127.0.0.1:80\n    filter: http\n    rules: {http: [{method: GET}]}\nlimits: {idle_timeout: 250ms}\n",
        )
        .unwrap();
        assert_eq!(config.listeners[0].protocol, Transport::Tcp);
        assert_eq!(config.listeners[0].rules_json(), r#"{"http":[{"method":"GET"}]}"#);
        assert_eq!(config.limits().unwrap().idle_timeout, Duration::from_millis(250));
        let typo = GatewayConfig::parse("listeners:\n  - listen: 127.0.0.1:0\n    upstrem: x\n").unwrap_err();
        assert!(typo.to_string().starts_with("listeners[0]"), "{typo}");
        assert!(typo.to_string().contains("unknown field `upstrem`"), "{typo}");
        let bad = GatewayConfig::parse("listeners: []\n").unwrap_err();
        assert_eq!(bad.to_string(), "listeners: at least one listener is needed");
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("5 s"), None);
    }
}
