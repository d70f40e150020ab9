//! HTTP/2 (RFC 9113) in the http filter: a connection that starts with the
//! client preface (prior knowledge, h2c) is read frame by frame, each
//! request header block decoded ([`hpack`]), checked ([`request`]) and
//! enforced per stream with the same rules as HTTP/1 (`:authority` standing
//! for Host); see [`connection`] for how denied streams are taken out
//! without disturbing the others.

mod connection;
pub(crate) mod frame;
pub(crate) mod hpack;
mod huffman;
mod request;

pub(crate) use connection::H2Connection;
pub(crate) use frame::PREFACE;
pub(crate) use request::H2Request;
