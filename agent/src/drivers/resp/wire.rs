//! RESP2 on the wire for connections a single slot owns: commands are
//! encoded straight into the write buffer and replies are scanned in place
//! (only their extent and whether they are errors matter to a benchmark),
//! so a pipelined batch costs one write, one or a few reads and no
//! allocation per reply.

/// Appends `*N` / `$len` framed arguments to `out`.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    push_decimal(out, args.len() as u64);
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        push_decimal(out, arg.len() as u64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// The bytes `encode_command` writes for `args`.
pub fn command_len(args: &[&[u8]]) -> usize {
    let digits = |n: usize| itoa::Buffer::new().format(n).len();
    let frames: usize = args.iter().map(|arg| 1 + digits(arg.len()) + 2 + arg.len() + 2).sum();
    1 + digits(args.len()) + 2 + frames
}

/// Appends the decimal digits of `value` without a temporary String.
pub fn push_decimal(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// One scanned reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// Bytes the reply takes in the buffer.
    pub len: usize,
    /// A `-ERR ...` reply (at the top level or inside an array).
    pub is_error: bool,
}

/// A reply that is not RESP2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedReply(pub String);

const MAX_DEPTH: usize = 32;

fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?.windows(2).position(|w| w == b"\r\n").map(|i| from + i)
}

fn number(line: &[u8]) -> Result<i64, MalformedReply> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| MalformedReply(format!("bad length `{}`", String::from_utf8_lossy(line))))
}

/// Scans one reply at the start of `buf`; `Ok(None)` when it is incomplete.
pub fn scan_reply(buf: &[u8]) -> Result<Option<Reply>, MalformedReply> {
    scan_at(buf, 0, 0).map(|found| found.map(|(end, is_error)| Reply { len: end, is_error }))
}

fn scan_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(usize, bool)>, MalformedReply> {
    if depth > MAX_DEPTH {
        return Err(MalformedReply("replies nested too deep".into()));
    }
    let Some(&kind) = buf.get(at) else { return Ok(None) };
    let Some(end) = line_end(buf, at + 1) else { return Ok(None) };
    let after_line = end + 2;
    match kind {
        b'+' | b':' => Ok(Some((after_line, false))),
        b'-' => Ok(Some((after_line, true))),
        b'$' => {
            let len = number(&buf[at + 1..end])?;
            if len < 0 {
                return Ok(Some((after_line, false)));
            }
            let stop = after_line + len as usize + 2;
            Ok((buf.len() >= stop).then_some((stop, false)))
        }
        b'*' => {
            let count = number(&buf[at + 1..end])?;
            let mut position = after_line;
            let mut is_error = false;
            for _ in 0..count.max(0) {
                match scan_at(buf, position, depth + 1)? {
                    Some((next, error)) => {
                        position = next;
                        is_error |= error;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((position, is_error)))
        }
        other => Err(MalformedReply(format!("unexpected reply type byte 0x{other:02x}"))),
    }
}

/// What a driver needs to know of one reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The error text of a `-ERR ...` reply (or of an error inside an array).
    pub error: Option<String>,
    /// A null bulk string or null array (`$-1`, `*-1`).
    pub nil: bool,
    /// The value of an integer reply.
    pub integer: Option<i64>,
    /// Bytes the reply took on the wire.
    pub bytes: u32,
    /// Nanoseconds spent decoding the value it carried (`codec_in_path`).
    pub decode_ns: Option<u32>,
    /// Why the value it carried could not be decoded.
    pub undecodable: Option<String>,
}

impl Summary {
    /// Decodes the value `body` with `codec` (when there is one), keeping
    /// the time it took or why it failed.
    pub(crate) fn decode(&mut self, body: &[u8], codec: Option<&mut crate::workloads::values::Codec>) {
        let Some(codec) = codec else { return };
        let start = std::time::Instant::now();
        let decoded = codec.decode(body);
        self.decode_ns = Some(start.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
        if let Err(error) = decoded {
            self.undecodable = Some(error.to_string());
        }
    }
}

/// The body of a non-null bulk string reply at the start of `buf`.
pub fn bulk_body(buf: &[u8], reply: Reply) -> Option<&[u8]> {
    if buf.first() != Some(&b'$') {
        return None;
    }
    let end = line_end(buf, 1)?;
    if &buf[1..end] == b"-1" {
        return None;
    }
    buf.get(end + 2..reply.len.checked_sub(2)?)
}

/// Summarizes a reply that `scan_reply` found at the start of `buf`.
pub fn summarize(buf: &[u8], reply: Reply) -> Summary {
    let body = buf.get(1..reply.len).unwrap_or_default();
    let line = line_end(buf, 1).map_or(body, |end| &buf[1..end]);
    Summary {
        error: reply.is_error.then(|| {
            // A top-level error is its own line; an error nested in an array
            // is reported by the array's first bytes.
            String::from_utf8_lossy(if buf[0] == b'-' { line } else { body }).trim().to_string()
        }),
        nil: matches!(buf[0], b'$' | b'*') && line == b"-1",
        integer: (buf[0] == b':').then(|| std::str::from_utf8(line).ok().and_then(|s| s.parse().ok())).flatten(),
        bytes: reply.len.min(u32::MAX as usize) as u32,
        ..Summary::default()
    }
}

/// The text of a bulk string reply at the start of `buf`, if complete.
pub fn bulk_text(buf: &[u8]) -> Result<Option<(String, usize)>, MalformedReply> {
    let Some(reply) = scan_reply(buf)? else { return Ok(None) };
    if buf[0] != b'$' || reply.is_error {
        return Err(MalformedReply(String::from_utf8_lossy(&buf[..reply.len]).trim().to_string()));
    }
    let Some(end) = line_end(buf, 1) else { return Ok(None) };
    let body = buf.get(end + 2..reply.len.saturating_sub(2)).unwrap_or_default();
    Ok(Some((String::from_utf8_lossy(body).into_owned(), reply.len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_framed_like_resp() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"SET", b"k:10", b""]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$4\r\nk:10\r\n$0\r\n\r\n");
        assert_eq!(command_len(&[b"SET", b"k:10", b""]), out.len());
        let long = vec![b'x'; 12_345];
        let mut framed = Vec::new();
        encode_command(&mut framed, &[b"SET", &long, b"1"]);
        assert_eq!(command_len(&[b"SET", &long, b"1"]), framed.len());
        let mut digits = Vec::new();
        push_decimal(&mut digits, 0);
        push_decimal(&mut digits, 18_446_744_073_709_551_615);
        assert_eq!(digits, b"018446744073709551615");
    }

    #[test]
    fn replies_are_scanned_whole_or_not_at_all() {
        let wire = b"+OK\r\n$5\r\nhello\r\n$-1\r\n:42\r\n-ERR no\r\n*2\r\n$1\r\na\r\n-WRONGTYPE x\r\n";
        let mut at = 0;
        let mut seen = Vec::new();
        while at < wire.len() {
            let reply = scan_reply(&wire[at..]).expect("valid").expect("complete");
            seen.push(reply.is_error);
            at += reply.len;
        }
        assert_eq!(seen, vec![false, false, false, false, true, true]);
        for cut in 0..wire.len() {
            // Every prefix either scans a first reply fully or waits.
            match scan_reply(&wire[..cut]).expect("valid prefix") {
                Some(reply) => assert!(reply.len <= cut),
                None => assert!(cut < 5),
            }
        }
        assert_eq!(scan_reply(b"$5\r\nhel"), Ok(None));
        assert!(scan_reply(b"?what\r\n").is_err());
        assert!(scan_reply(b"$x\r\n").is_err());
    }

    #[test]
    fn summaries_tell_errors_nils_and_integers() {
        let summary = |wire: &[u8]| summarize(wire, scan_reply(wire).expect("valid").expect("complete"));
        assert_eq!(summary(b"$-1\r\n"), Summary { nil: true, bytes: 5, ..Summary::default() });
        let bulk = b"$5\r\nhello\r\n";
        assert_eq!(bulk_body(bulk, scan_reply(bulk).expect("valid").expect("complete")), Some(&b"hello"[..]));
        assert_eq!(bulk_body(b"$-1\r\n", scan_reply(b"$-1\r\n").expect("valid").expect("complete")), None);
        assert_eq!(summary(b":17\r\n").integer, Some(17));
        assert_eq!(summary(b"-WRONGTYPE no\r\n").error.as_deref(), Some("WRONGTYPE no"));
        assert_eq!(summary(b"$2\r\n-1\r\n"), Summary { bytes: 8, ..Summary::default() });
    }

    #[test]
    fn bulk_text_reads_info() {
        let (text, len) = bulk_text(b"$10\r\nnode_id:k1\r\n+OK").expect("valid").expect("complete");
        assert_eq!((text.as_str(), len), ("node_id:k1", 17));
        assert!(bulk_text(b"-NOAUTH x\r\n").is_err());
    }
}
