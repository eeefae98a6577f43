//! The log output both services share: the `[log]` table of their
//! configuration files and the `tracing` subscriber it installs on stderr
//! (`robert serve`, `robert batch`, `robert codes serve`).
//!
//! `RUST_LOG` overrides the configured filter; text logs are coloured only
//! when stderr is a terminal and `NO_COLOR` is unset or empty, so a log file
//! or a pipe gets plain text; JSON lines are never coloured.

use serde::Deserialize;

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (colours only when stderr is a terminal).
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// `[log]`: the service's log output (stderr).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `robert_server=debug,info`
    /// (`RUST_LOG` overrides it).
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

/// Whether text logs on stderr get colours: stderr is a terminal and
/// `NO_COLOR` is unset or empty.
pub fn stderr_colour() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the subscriber of [`subscriber`] on stderr, unless one is
/// already installed (then it does nothing).
pub fn init(cfg: &LogConfig) {
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = subscriber(cfg, std::io::stderr, stderr_colour()).try_init();
}

/// The subscriber for `cfg`, writing to `writer`: the filter is `RUST_LOG`,
/// else `cfg.filter`, else `info` (when both are invalid); `ansi` colours
/// text lines.
pub fn subscriber<W>(
    cfg: &LogConfig,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match cfg.format {
        LogFormat::Json => Box::new(builder.json().with_ansi(false).finish()),
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_table_parses_and_defaults() {
        let cfg: LogConfig = serde_json::from_str(r#"{"format":"json"}"#).unwrap();
        assert_eq!(cfg.format, LogFormat::Json);
        assert_eq!(cfg.filter, "info");
        assert!(serde_json::from_str::<LogConfig>(r#"{"colour":true}"#).is_err());
        assert_eq!(LogConfig::default().format, LogFormat::Text);
    }
}
