//! The W3C trace context (`traceparent`): which trace a piece of work
//! belongs to and which span caused it. Pure: parsing, printing, new ids.

use std::fmt;

/// One trace: 16 bytes, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// One span of a trace: 8 bytes, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

/// A `traceparent`: `00-{trace id}-{parent span id}-{flags}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
}

impl TraceParent {
    /// Reads a header as W3C Trace Context Level 1 says a receiver must:
    /// version `00` exactly 55 characters; a later version at least that,
    /// with a `-` after the flags if longer; lowercase hex; no all-zero id;
    /// version `ff` is invalid. `None` means "start a new trace".
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let b = header.as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = hex::<1>(&header[0..2])?[0];
        match (version, b.len()) {
            (0xff, _) => return None,
            (0, 55) => {}
            (0, _) => return None,
            (_, 55) => {}
            (_, _) if b[55] == b'-' => {}
            _ => return None,
        }
        let trace_id = hex::<16>(&header[3..35])?;
        let span_id = hex::<8>(&header[36..52])?;
        let flags = hex::<1>(&header[53..55])?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id: TraceId(trace_id),
            span_id: SpanId(span_id),
            sampled: flags & 1 == 1,
        })
    }

    /// The first span of a new trace.
    pub fn new_root() -> Self {
        Self {
            trace_id: TraceId(nonzero(rand::random)),
            span_id: SpanId(nonzero(rand::random)),
            sampled: true,
        }
    }

    /// A new span of the same trace, caused by this one.
    #[must_use]
    pub fn child(&self) -> Self {
        Self {
            span_id: SpanId(nonzero(rand::random)),
            ..*self
        }
    }
}

impl fmt::Display for TraceParent {
    /// Printed into one buffer and written once: a `write!` per byte was
    /// 1 % of the write API's CPU under the charge load (perf), and every
    /// request prints its trace context twice (`traceresponse`, the
    /// command's metadata).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 55];
        buf[..3].copy_from_slice(b"00-");
        hex_into(&mut buf[3..35], &self.trace_id.0);
        buf[35] = b'-';
        hex_into(&mut buf[36..52], &self.span_id.0);
        buf[52] = b'-';
        hex_into(&mut buf[53..], &[u8::from(self.sampled)]);
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 32];
        hex_into(&mut buf, &self.0);
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 16];
        hex_into(&mut buf, &self.0);
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

/// Lowercase hex of `bytes` into `out` (twice as long).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
}

/// Lowercase hex only: the specification forbids uppercase.
fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

fn nonzero<const N: usize>(mut draw: impl FnMut() -> [u8; N]) -> [u8; N] {
    loop {
        let id = draw();
        if id != [0; N] {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specifications_example_reads_and_prints_back() {
        let tp = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(tp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.span_id.to_string(), "00f067aa0ba902b7");
        assert!(tp.sampled);
        assert_eq!(tp.to_string(), EXAMPLE);
        let unsampled = TraceParent {
            sampled: false,
            ..tp
        };
        assert_eq!(unsampled.to_string(), EXAMPLE.replace("-01", "-00"));
    }

    #[test]
    fn invalid_headers_start_a_new_trace() {
        for bad in [
            "",
            "garbage",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // uppercase
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero span
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // 00 is exact
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_version_00_prefix() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next";
        let tp = TraceParent::parse(later).unwrap();
        assert!(!tp.sampled);
        assert_eq!(tp.trace_id, TraceParent::parse(EXAMPLE).unwrap().trace_id);
        assert_eq!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00x"),
            None
        );
    }

    #[test]
    fn a_child_keeps_the_trace_and_gets_its_own_span() {
        let root = TraceParent::new_root();
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
        assert_ne!(TraceParent::new_root().trace_id, root.trace_id);
        assert_eq!(TraceParent::parse(&child.to_string()), Some(child));
    }
}
