//! Responses: what the filter reads of them (the correlation id, an error
//! code where it sits near the start, a Fetch session id) and the one
//! response it rewrites, ApiVersions, when topic rules are in force.

use crate::api::{self, *};
use crate::request;
use crate::wire::{Read, Reader, Short};

/// How many body bytes the filter looks at for the error code; the rest
/// of a response streams through without entering Wasm.
pub(crate) const PEEK: usize = 256;

/// Largest ApiVersions response the filter buffers to rewrite (real ones
/// are about 1 KiB).
pub(crate) const MAX_API_VERSIONS: usize = 64 << 10;

/// Where the body starts (after the correlation id and, for header v1,
/// the tagged fields), and the response's error code if it is cheap to
/// find in `buf` (the frame's first bytes).
pub(crate) fn peek(key: i16, version: i16, buf: &[u8], end: usize) -> (Option<usize>, Option<i16>) {
    let mut r = Reader::new(buf, 8, end);
    if r.tags(api::response_header_flexible(key, version)).is_err() {
        return (None, None);
    }
    let body = r.pos();
    (Some(body), error_code(&mut r, key, version).ok())
}

fn error_code(r: &mut Reader<'_>, key: i16, v: i16) -> Read<i16> {
    let flex = api::is_flexible(key, v);
    // Responses that start with [throttle time,] error code.
    let throttle_from = match key {
        HEARTBEAT | LEAVE_GROUP | SYNC_GROUP | LIST_GROUPS => 1,
        FIND_COORDINATOR if v <= 3 => 1,
        JOIN_GROUP => 2,
        INIT_PRODUCER_ID
        | ADD_OFFSETS_TO_TXN
        | END_TXN
        | DESCRIBE_CLUSTER
        | GET_TELEMETRY_SUBSCRIPTIONS
        | PUSH_TELEMETRY => 0,
        API_VERSIONS | SASL_HANDSHAKE => i16::MAX,
        FIND_COORDINATOR => {
            // v4+: one result per key; report the first.
            r.i32()?;
            if r.count(flex, 1)? == 0 {
                return Ok(0);
            }
            r.name(flex)?;
            r.i32()?;
            r.name(flex)?;
            r.i32()?;
            return r.i16();
        }
        PRODUCE => return first_partition_error(r, flex, v >= 13),
        LIST_OFFSETS | OFFSET_COMMIT | TXN_OFFSET_COMMIT => {
            if key == TXN_OFFSET_COMMIT || v >= if key == LIST_OFFSETS { 2 } else { 3 } {
                r.i32()?;
            }
            return first_partition_error(r, flex, false);
        }
        FETCH => {
            r.i32()?;
            if v >= 7 {
                let top = r.i16()?;
                r.i32()?; // session id
                if top != 0 {
                    return Ok(top);
                }
            }
            return first_partition_error(r, flex, v >= 13);
        }
        _ => return Err(Short::Bad("no cheap error code")),
    };
    if v >= throttle_from {
        r.i32()?;
    }
    r.i16()
}

/// `[topic, [partition index, error code, ...]]`: the first partition's error.
fn first_partition_error(r: &mut Reader<'_>, flex: bool, by_id: bool) -> Read<i16> {
    if r.count(flex, 1)? == 0 {
        return Ok(0);
    }
    if by_id {
        r.uuid()?;
    } else {
        r.name(flex)?;
    }
    if r.count(flex, 1)? == 0 {
        return Ok(0);
    }
    r.i32()?;
    r.i16()
}

/// A Fetch response's session id (v7+), from the frame's first bytes.
pub(crate) fn fetch_session_id(version: i16, buf: &[u8], end: usize, body: usize) -> Option<i32> {
    if version < 7 {
        return None;
    }
    let mut r = Reader::new(buf, body, end);
    r.take(6).ok()?; // throttle, error
    r.i32().ok()
}

/// Highest versions that name topics by name and that we parse: beyond
/// them Produce and Fetch (v13+) and OffsetCommit/OffsetFetch (v10+) name
/// topics by id, which a filter seeing one connection cannot resolve.
pub(crate) fn topic_name_max(key: i16) -> Option<i16> {
    Some(match key {
        PRODUCE | FETCH => 12,
        OFFSET_COMMIT | OFFSET_FETCH => 9,
        _ => {
            return (0..=i16::MAX)
                .rev()
                .find(|v| request::parses(key, *v))
                .filter(|_| !api::is_topic_free(key));
        }
    })
}

/// Lowers the max versions an ApiVersions response advertises for topic
/// APIs to [`topic_name_max`], in place (the fields keep their size), so
/// clients pick versions whose topics the filter can check. `frame` is the
/// whole response; returns whether anything changed.
pub(crate) fn clamp_api_versions(version: i16, frame: &mut [u8]) -> bool {
    let Ok(patches) = api_versions_patches(version, frame) else { return false };
    for &(at, max) in &patches {
        frame[at..at + 2].copy_from_slice(&max.to_be_bytes());
    }
    !patches.is_empty()
}

fn api_versions_patches(version: i16, frame: &[u8]) -> Read<Vec<(usize, i16)>> {
    let mut r = Reader::new(frame, 8, frame.len());
    if r.i16()? != 0 {
        // An error (e.g. UNSUPPORTED_VERSION, answered in v0): leave it.
        return Ok(vec![]);
    }
    let flex = version >= 3;
    let mut patches = vec![];
    for _ in 0..r.count(flex, 6)? {
        let key = r.i16()?;
        let min = r.i16()?;
        let at = r.pos();
        let max = r.i16()?;
        r.tags(flex)?;
        if let Some(limit) = topic_name_max(key)
            && max > limit
            && min <= limit
        {
            patches.push((at, limit));
        }
    }
    Ok(patches)
}
