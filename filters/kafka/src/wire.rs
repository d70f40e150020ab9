//! Kafka's primitive types: a bounds-checked reader over a (possibly
//! partially buffered) frame, and a writer for the responses we encode.
//!
//! Flexible versions (KIP-482) use compact strings/arrays (unsigned varint
//! length + 1, 0 = null) and tagged-field sections; older versions use
//! `i16`/`i32` lengths with -1 = null.

/// Why a read stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Short {
    /// The frame is valid so far but only partly buffered: we need this many
    /// bytes of the frame (counted from its first byte) to go on.
    Need(usize),
    /// The frame is malformed.
    Bad(&'static str),
}

pub(crate) type Read<T> = Result<T, Short>;

/// Reads one frame. Positions count from the frame's first byte (its size
/// field); `end` is the frame's length, `buf` what is buffered of it.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// A reader over a frame of `end` bytes of which `buf` is buffered,
    /// positioned at `pos`.
    pub(crate) fn new(buf: &'a [u8], pos: usize, end: usize) -> Self {
        Reader { buf: &buf[..buf.len().min(end)], pos, end }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// True when the next `n` bytes are buffered.
    pub(crate) fn has(&self, n: usize) -> bool {
        self.pos.saturating_add(n) <= self.buf.len()
    }

    pub(crate) fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        let stop = self.pos.checked_add(n).ok_or(Short::Bad("length overflow"))?;
        if stop > self.end {
            return Err(Short::Bad("field runs past the end of the message"));
        }
        if stop > self.buf.len() {
            return Err(Short::Need(stop));
        }
        let out = &self.buf[self.pos..stop];
        self.pos = stop;
        Ok(out)
    }

    /// Skips `n` bytes that need not be buffered (record batches): later
    /// reads ask for them only if they read past them.
    pub(crate) fn skip_unbuffered(&mut self, n: usize) -> Read<()> {
        if n > self.remaining() {
            return Err(Short::Bad("field runs past the end of the message"));
        }
        self.pos += n;
        Ok(())
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Read<[u8; N]> {
        let bytes = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn i8(&mut self) -> Read<i8> {
        Ok(self.array::<1>()?[0] as i8)
    }

    pub(crate) fn i16(&mut self) -> Read<i16> {
        self.array().map(i16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self) -> Read<i32> {
        self.array().map(i32::from_be_bytes)
    }

    pub(crate) fn uuid(&mut self) -> Read<[u8; 16]> {
        self.array()
    }

    /// An unsigned varint of at most 32 bits (5 bytes).
    pub(crate) fn uvarint(&mut self) -> Read<u32> {
        let mut value = 0u32;
        for i in 0..5 {
            let byte = self.array::<1>()?[0];
            if i == 4 && byte > 0x0f {
                return Err(Short::Bad("varint overflows 32 bits"));
            }
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Short::Bad("varint overflows 32 bits"))
    }

    /// A length: compact (varint, n+1, 0 = null) or `i16`/`i32` (-1 = null).
    fn length(&mut self, flexible: bool, wide: bool) -> Read<Option<usize>> {
        let len = if flexible {
            i64::from(self.uvarint()?) - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        match len {
            -1 => Ok(None),
            n if n < 0 => Err(Short::Bad("negative length")),
            n => Ok(Some(n as usize)),
        }
    }

    /// A nullable string (the caller rejects null where it is not allowed).
    pub(crate) fn string(&mut self, flexible: bool) -> Read<Option<&'a [u8]>> {
        match self.length(flexible, false)? {
            None => Ok(None),
            Some(n) => self.take(n).map(Some),
        }
    }

    /// A string that must not be null.
    pub(crate) fn name(&mut self, flexible: bool) -> Read<&'a [u8]> {
        self.string(flexible)?.ok_or(Short::Bad("null where a name is required"))
    }

    /// The length of a nullable byte field (record batches).
    pub(crate) fn bytes_len(&mut self, flexible: bool) -> Read<Option<usize>> {
        let len = self.length(flexible, true)?;
        if len.is_some_and(|n| n > self.remaining()) {
            return Err(Short::Bad("bytes run past the end of the message"));
        }
        Ok(len)
    }

    /// A nullable array's element count. Every element takes at least
    /// `min_size` bytes, so counts the frame cannot hold are rejected before
    /// anything loops or allocates.
    pub(crate) fn array_len(&mut self, flexible: bool, min_size: usize) -> Read<Option<usize>> {
        let len = self.length(flexible, true)?;
        if len.is_some_and(|n| n.saturating_mul(min_size.max(1)) > self.remaining()) {
            return Err(Short::Bad("array count larger than the message"));
        }
        Ok(len)
    }

    /// An array that must not be null.
    pub(crate) fn count(&mut self, flexible: bool, min_size: usize) -> Read<usize> {
        self.array_len(flexible, min_size)?.ok_or(Short::Bad("null where an array is required"))
    }

    /// Skips an array of fixed-size elements (e.g. `[int32]`).
    pub(crate) fn skip_array(&mut self, flexible: bool, size: usize) -> Read<()> {
        if let Some(n) = self.array_len(flexible, size)? {
            self.take(n * size)?;
        }
        Ok(())
    }

    /// Reads an `[int32]` array.
    pub(crate) fn i32s(&mut self, flexible: bool) -> Read<Option<Vec<i32>>> {
        let Some(n) = self.array_len(flexible, 4)? else { return Ok(None) };
        (0..n).map(|_| self.i32()).collect::<Read<Vec<_>>>().map(Some)
    }

    /// Skips a tagged-field section (flexible versions only).
    pub(crate) fn tags(&mut self, flexible: bool) -> Read<()> {
        if !flexible {
            return Ok(());
        }
        let count = self.uvarint()? as usize;
        // Each tagged field takes at least two bytes (tag and size).
        if count.saturating_mul(2) > self.remaining() {
            return Err(Short::Bad("tagged field count larger than the message"));
        }
        for _ in 0..count {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

/// Encodes a response frame (size prefix filled in by [`Writer::finish`]).
#[derive(Debug)]
pub(crate) struct Writer {
    out: Vec<u8>,
    pub(crate) flexible: bool,
}

impl Writer {
    pub(crate) fn new(flexible: bool) -> Self {
        Writer { out: vec![0; 4], flexible }
    }

    pub(crate) fn i8(&mut self, v: i8) -> &mut Self {
        self.out.push(v as u8);
        self
    }

    pub(crate) fn bool(&mut self, v: bool) -> &mut Self {
        self.out.push(u8::from(v));
        self
    }

    pub(crate) fn i16(&mut self, v: i16) -> &mut Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn i32(&mut self, v: i32) -> &mut Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn i64(&mut self, v: i64) -> &mut Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn uuid(&mut self, v: [u8; 16]) -> &mut Self {
        self.out.extend_from_slice(&v);
        self
    }

    pub(crate) fn uvarint(&mut self, mut v: u32) -> &mut Self {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
        self
    }

    fn len(&mut self, n: Option<usize>, wide: bool) -> &mut Self {
        match (self.flexible, n) {
            (true, None) => self.uvarint(0),
            (true, Some(n)) => self.uvarint(n as u32 + 1),
            (false, None) if wide => self.i32(-1),
            (false, None) => self.i16(-1),
            (false, Some(n)) if wide => self.i32(n as i32),
            (false, Some(n)) => self.i16(n as i16),
        }
    }

    pub(crate) fn str(&mut self, s: &[u8]) -> &mut Self {
        self.len(Some(s.len()), false);
        self.out.extend_from_slice(s);
        self
    }

    pub(crate) fn null_str(&mut self) -> &mut Self {
        self.len(None, false)
    }

    pub(crate) fn opt_str(&mut self, s: Option<&[u8]>) -> &mut Self {
        match s {
            Some(s) => self.str(s),
            None => self.null_str(),
        }
    }

    pub(crate) fn array(&mut self, n: usize) -> &mut Self {
        self.len(Some(n), true)
    }

    pub(crate) fn null_array(&mut self) -> &mut Self {
        self.len(None, true)
    }

    pub(crate) fn null_bytes(&mut self) -> &mut Self {
        self.len(None, true)
    }

    pub(crate) fn empty_bytes(&mut self) -> &mut Self {
        self.len(Some(0), true)
    }

    /// An empty tagged-field section (flexible versions only).
    pub(crate) fn tags(&mut self) -> &mut Self {
        if self.flexible {
            self.out.push(0);
        }
        self
    }

    /// The finished frame with its size prefix.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let size = (self.out.len() - 4) as u32;
        self.out[..4].copy_from_slice(&size.to_be_bytes());
        self.out
    }
}
