//! HTTP/2 request header lists (RFC 9113 §8.2, §8.3), checked as strictly
//! as HTTP/1 heads: a list two servers could read differently is malformed.

use crate::request::{check_path, valid_authority};

/// Headers HTTP/2 forbids (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&[u8]; 5] =
    [b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"];

/// A request that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct H2Request {
    pub(crate) method: String,
    pub(crate) scheme: String,
    /// `:authority`, else `host`.
    pub(crate) authority: Option<String>,
    pub(crate) path: String,
    /// Regular fields, in order.
    pub(crate) headers: Vec<(String, String)>,
    /// `content-type: application/grpc*`: denials answer with gRPC's status.
    pub(crate) grpc: bool,
}

fn text(bytes: &[u8]) -> Result<String, &'static str> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "header value is not UTF-8")
}

/// Checks one field's name and value.
fn check_field(name: &[u8], value: &[u8]) -> Result<(), &'static str> {
    let name_ok =
        !name.is_empty() && name.iter().all(|b| crate::head::is_tchar(*b) && !b.is_ascii_uppercase());
    if !name_ok {
        return Err("invalid header name (HTTP/2 names are lowercase tokens)");
    }
    if value.iter().any(|b| matches!(b, 0 | b'\r' | b'\n')) {
        return Err("NUL, CR or LF in a header value");
    }
    if value.first().is_some_and(|b| matches!(b, b' ' | b'\t'))
        || value.last().is_some_and(|b| matches!(b, b' ' | b'\t'))
    {
        return Err("whitespace around a header value");
    }
    Ok(())
}

/// Validates a decoded request header list.
pub(crate) fn parse(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<H2Request, &'static str> {
    let (mut method, mut scheme, mut authority, mut path) = (None, None, None, None);
    let mut headers = Vec::new();
    let mut host = None;
    for (name, value) in fields {
        if let Some(pseudo) = name.strip_prefix(b":") {
            if !headers.is_empty() {
                return Err("pseudo-header after a regular header");
            }
            let slot = match pseudo {
                b"method" => &mut method,
                b"scheme" => &mut scheme,
                b"authority" => &mut authority,
                b"path" => &mut path,
                b"protocol" => return Err("extended CONNECT (:protocol) is not allowed"),
                _ => return Err("unknown or response pseudo-header in a request"),
            };
            if slot.replace(text(value)?).is_some() {
                return Err("repeated pseudo-header");
            }
            continue;
        }
        check_field(name, value)?;
        if CONNECTION_SPECIFIC.contains(&name.as_slice()) {
            return Err("connection-specific header in HTTP/2");
        }
        if name == b"te" && value != b"trailers" {
            return Err("te other than trailers");
        }
        if name == b"host" && host.replace(text(value)?).is_some() {
            return Err("repeated host");
        }
        headers.push((text(name)?, text(value)?));
    }
    let method = method.ok_or("missing :method")?;
    if method == "CONNECT" {
        // A tunnel the rules cannot see into: refused like HTTP/1 CONNECT.
        return Err("CONNECT is not allowed");
    }
    if !crate::head::is_token(method.as_bytes()) {
        return Err("invalid :method");
    }
    let scheme = scheme.ok_or("missing :scheme")?;
    let path = path.ok_or("missing :path")?;
    let asterisk = path == "*" && method == "OPTIONS";
    if !asterisk && !path.starts_with('/') {
        return Err(":path is not origin-form");
    }
    if !asterisk {
        check_path(&path)?;
    }
    if let (Some(authority), Some(host)) = (&authority, &host)
        && !authority.eq_ignore_ascii_case(host)
    {
        return Err(":authority and host differ");
    }
    let authority = authority.or(host);
    if authority.as_ref().is_some_and(|a| !valid_authority(a.as_bytes())) {
        return Err("invalid :authority");
    }
    let grpc = headers.iter().any(|(n, v)| n == "content-type" && v.starts_with("application/grpc"));
    Ok(H2Request { method, scheme, authority, path, headers, grpc })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(fields: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        fields.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    fn grpc_call(path: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        list(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "api:50051"),
            (":path", path),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ])
    }

    #[test]
    fn grpc_calls_parse() {
        let request = parse(&grpc_call("/porin.test.Echo/Say")).unwrap();
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/porin.test.Echo/Say"));
        assert_eq!(request.authority.as_deref(), Some("api:50051"));
        assert!(request.grpc);
        assert_eq!(request.headers.len(), 2);
    }

    #[test]
    fn malformed_lists_are_refused() {
        let base = grpc_call("/a");
        let with = |extra: (&str, &str)| {
            let mut fields = base.clone();
            fields.push((extra.0.as_bytes().to_vec(), extra.1.as_bytes().to_vec()));
            parse(&fields)
        };
        assert!(with(("connection", "close")).is_err());
        assert!(with(("te", "gzip")).is_err());
        assert!(with(("Upper", "x")).is_err());
        assert!(with(("x", "a\r\nb")).is_err());
        assert!(with(("x", " padded")).is_err());
        assert!(with((":path", "/again")).is_err(), "pseudo after regular / repeated");
        assert!(with(("host", "other")).is_err(), ":authority and host differ");
        assert!(parse(&grpc_call("/a/../admin")).is_err());
        assert!(parse(&grpc_call("/a%2fb")).is_err());
        assert!(parse(&grpc_call("relative")).is_err());
        assert!(parse(&list(&[(":method", "GET"), (":scheme", "http")])).is_err(), "missing :path");
        assert!(parse(&list(&[(":method", "CONNECT"), (":authority", "x:443")])).is_err());
        assert!(parse(&list(&[(":status", "200")])).is_err());
    }
}
