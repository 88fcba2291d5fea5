//! RESP2 request parsing and reply encoding.
//!
//! Requests are arrays of bulk strings (what every client sends) or inline
//! commands (what a person types into telnet). The parser never trusts a
//! length it reads: bulk and array sizes are bounded before anything is
//! allocated, and an incomplete frame simply waits for more bytes.

use bytes::{Buf, Bytes, BytesMut};

/// Largest bulk string accepted in a request (as Redis's proto-max-bulk-len).
pub const MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Most arguments accepted in one request.
pub const MAX_ARGS: usize = 1024 * 1024;
/// Longest inline command or length line.
pub const MAX_INLINE_LEN: usize = 64 * 1024;

/// A request that cannot be parsed; the connection is closed after the
/// error is sent, as Redis does, because the stream cannot be resynchronised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn find_crlf(buf: &[u8], from: usize) -> Result<Option<usize>, ProtocolError> {
    match buf[from..].iter().position(|&b| b == b'\r') {
        Some(i) if from + i + 1 < buf.len() => {
            if buf[from + i + 1] == b'\n' {
                Ok(Some(from + i))
            } else {
                Err(ProtocolError("expected '\\n' after '\\r'".into()))
            }
        }
        Some(_) => Ok(None),
        None if buf.len() - from > MAX_INLINE_LEN => Err(ProtocolError("too big inline request or length line".into())),
        None => Ok(None),
    }
}

fn parse_length(line: &[u8], what: &str) -> Result<i64, ProtocolError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| ProtocolError(format!("invalid {what} length")))
}

/// Parses one request from the front of `buf`. Returns `Ok(None)` when more
/// bytes are needed; on success the request's bytes are consumed.
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return parse_inline(buf);
    }
    let Some(end) = find_crlf(buf, 1)? else {
        return Ok(None);
    };
    let count = parse_length(&buf[1..end], "multibulk")?;
    if count > MAX_ARGS as i64 {
        return Err(ProtocolError("invalid multibulk length".into()));
    }
    let mut pos = end + 2;
    if count <= 0 {
        buf.advance(pos);
        return Ok(Some(Vec::new()));
    }
    // First pass: find where every argument lies without copying.
    let mut spans = Vec::with_capacity(count.min(1024) as usize);
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(None);
        }
        if buf[pos] != b'$' {
            return Err(ProtocolError(format!("expected '$', got '{}'", char::from(buf[pos]))));
        }
        let Some(end) = find_crlf(buf, pos + 1)? else {
            return Ok(None);
        };
        let len = parse_length(&buf[pos + 1..end], "bulk")?;
        if len < 0 || len as usize > MAX_BULK_LEN {
            return Err(ProtocolError("invalid bulk length".into()));
        }
        let start = end + 2;
        let stop = start + len as usize;
        if stop + 2 > buf.len() {
            // Reserve for a large bulk so the next reads land in one buffer.
            buf.reserve(stop + 2 - buf.len());
            return Ok(None);
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Err(ProtocolError("bulk string not terminated by CRLF".into()));
        }
        spans.push((start, stop));
        pos = stop + 2;
    }
    let frame = buf.split_to(pos).freeze();
    Ok(Some(spans.into_iter().map(|(a, b)| frame.slice(a..b)).collect()))
}

fn parse_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_INLINE_LEN {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(None);
    };
    let line = buf.split_to(newline + 1);
    let text = &line[..newline];
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.contains(&b'"') || text.contains(&b'\'') {
        return Err(ProtocolError("quoted inline arguments are not supported".into()));
    }
    Ok(Some(
        text.split(|b| b.is_ascii_whitespace()).filter(|part| !part.is_empty()).map(Bytes::copy_from_slice).collect(),
    ))
}

/// Reply encoders; each appends one RESP2 value to `out`.
pub mod reply {
    use bytes::{BufMut, BytesMut};

    pub fn simple(out: &mut BytesMut, text: &str) {
        out.put_u8(b'+');
        out.put_slice(text.as_bytes());
        out.put_slice(b"\r\n");
    }

    pub fn ok(out: &mut BytesMut) {
        out.put_slice(b"+OK\r\n");
    }

    pub fn error(out: &mut BytesMut, text: &str) {
        out.put_u8(b'-');
        out.put_slice(text.as_bytes());
        out.put_slice(b"\r\n");
    }

    pub fn integer(out: &mut BytesMut, value: i64) {
        out.put_u8(b':');
        put_decimal(out, value);
        out.put_slice(b"\r\n");
    }

    pub fn bulk(out: &mut BytesMut, value: &[u8]) {
        out.put_u8(b'$');
        put_decimal(out, value.len() as i64);
        out.put_slice(b"\r\n");
        out.put_slice(value);
        out.put_slice(b"\r\n");
    }

    pub fn null(out: &mut BytesMut) {
        out.put_slice(b"$-1\r\n");
    }

    pub fn null_array(out: &mut BytesMut) {
        out.put_slice(b"*-1\r\n");
    }

    pub fn array_header(out: &mut BytesMut, len: usize) {
        out.put_u8(b'*');
        put_decimal(out, len as i64);
        out.put_slice(b"\r\n");
    }

    /// Appends decimal digits formatted on the stack (no allocation).
    fn put_decimal(out: &mut BytesMut, value: i64) {
        out.put_slice(itoa::Buffer::new().format(value).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(frame) = parse_request(&mut buf)? {
            out.push(frame);
        }
        Ok(out)
    }

    #[test]
    fn parses_arrays_and_inline() {
        let frames = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n").expect("valid");
        assert_eq!(frames, vec![vec![Bytes::from("GET"), Bytes::from("k")], vec![Bytes::from("PING")]]);
    }

    #[test]
    fn waits_for_incomplete_frames() {
        let input = b"*2\r\n$3\r\nGET\r\n$1\r";
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(parse_request(&mut buf), Ok(None));
        assert_eq!(buf.len(), input.len(), "nothing consumed");
    }

    #[test]
    fn rejects_hostile_lengths_without_allocating() {
        assert!(parse_all(b"*99999999999\r\n").is_err());
        assert!(parse_all(b"*1\r\n$99999999999\r\n").is_err());
        assert!(parse_all(b"*1\r\n$-5\r\n").is_err());
        assert!(parse_all(b"*1\r\n:5\r\n").is_err());
        assert!(parse_all(b"*1\r\n$1\r\nab\r\n").is_err());
        assert!(parse_all(b"*x\r\n").is_err());
        assert!(parse_all(&vec![b'a'; MAX_INLINE_LEN + 10]).is_err());
    }

    proptest! {
        #[test]
        fn any_split_of_a_pipeline_parses_the_same(
            args in proptest::collection::vec(proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..5), 1..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let mut wire = Vec::new();
            for command in &args {
                wire.extend_from_slice(format!("*{}\r\n", command.len()).as_bytes());
                for arg in command {
                    wire.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                    wire.extend_from_slice(arg);
                    wire.extend_from_slice(b"\r\n");
                }
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
            points.sort_unstable();
            let mut buf = BytesMut::new();
            let mut parsed = Vec::new();
            let mut last = 0;
            for point in points.into_iter().chain([wire.len()]) {
                buf.extend_from_slice(&wire[last..point]);
                last = point;
                while let Some(frame) = parse_request(&mut buf).expect("valid wire") {
                    parsed.push(frame);
                }
            }
            let expected: Vec<Vec<Bytes>> = args.iter().map(|c| c.iter().map(|a| Bytes::from(a.clone())).collect()).collect();
            prop_assert_eq!(parsed, expected);
            prop_assert!(buf.is_empty());
        }
    }
}
