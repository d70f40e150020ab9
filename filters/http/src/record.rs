//! L7 records under Hubble's field names.

use porin_sdk::{Record, RecordVerdict};

use crate::request::RequestHead;

/// Headers whose values records never show.
const REDACTED: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// The URL as Hubble shows it: `http://HOST/path?query`. Without a Host
/// (HTTP/1.0), the destination address stands in for it when known.
pub(crate) fn url(head: &RequestHead, destination: Option<&str>) -> String {
    match head.host.as_deref().or(destination) {
        Some(host) if !head.is_connect() && head.path != "*" => {
            format!("{}://{host}{}", head.scheme, head.path)
        }
        Some(host) if head.path == "*" => format!("{}://{host}", head.scheme),
        _ => head.path.clone(),
    }
}

/// Headers as records show them (`name: value`), credentials redacted.
pub(crate) fn redacted<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    headers
        .map(|(name, value)| {
            let value =
                if REDACTED.iter().any(|r| name.eq_ignore_ascii_case(r)) { "[redacted]" } else { value };
            format!("{name}: {value}")
        })
        .collect()
}

/// The REQUEST record of a parsed request.
pub(crate) fn request(verdict: RecordVerdict, head: &RequestHead, url: &str) -> Record {
    let headers = redacted(head.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    Record::request(verdict)
        .str("http.method", &head.method)
        .str("http.url", url)
        .str("http.protocol", head.version.as_str())
        .strs("http.headers", headers.iter().map(String::as_str))
}
