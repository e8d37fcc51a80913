//! The test kit shared by every end-to-end test of the lab (behind the `test-support`
//! feature): reading keep-alive HTTP/1.1 answers from a client connection.
//!
//! Owns: the one response reader the lab tests use instead of a copy each. Must not: be used
//! by production code (the binary has its own bounded clients), or hide a malformed answer —
//! everything unexpected is an error naming what was wrong.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

/// Largest body the kit reads: lab back-ends answer with a line; anything bigger is a bug.
const MAX_BODY: usize = 1 << 20;

/// One HTTP/1.1 response read from a keep-alive connection: its status code and its
/// `Content-Length` body as text.
///
/// # Errors
/// A read error or a timeout (named by the step: status, header, body), a status line that is
/// not `HTTP/1.1 NNN`, a missing or bad `Content-Length`, a body over 1 MiB or not UTF-8.
pub fn read_response(reader: &mut BufReader<TcpStream>) -> Result<(u16, String), String> {
    let mut status = String::new();
    reader
        .read_line(&mut status)
        .map_err(|e| format!("status: {e}"))?;
    let code = status
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("status line {status:?}"))?;
    let mut len = None;
    loop {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("header: {e}"))?;
        if line.is_empty() {
            return Err("connection closed in the head".to_owned());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                let n = v
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("Content-Length {v:?}"))?;
                len = Some(n);
            }
        }
    }
    let len = len.ok_or("no Content-Length")?;
    if len > MAX_BODY {
        return Err(format!("a body of {len} bytes"));
    }
    let mut body = vec![0u8; len];
    reader
        .read_exact(&mut body)
        .map_err(|e| format!("body: {e}"))?;
    let body = String::from_utf8(body).map_err(|_| "a body that is not UTF-8".to_owned())?;
    Ok((code, body))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;

    use super::*;

    fn answered(raw: &'static [u8]) -> Result<(u16, String), String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let server = std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.write_all(raw);
            }
        });
        let client = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        let got = read_response(&mut BufReader::new(client));
        let _ = server.join();
        got
    }

    #[test]
    fn responses_are_read_and_bad_ones_named() {
        assert_eq!(
            answered(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nweb1 "),
            Ok((200, "web1 ".to_owned()))
        );
        assert_eq!(
            answered(b"HTTP/1.1 503 x\r\ncontent-length: 0\r\n\r\n"),
            Ok((503, String::new()))
        );
        assert!(answered(b"HTTP/1.1 200 OK\r\n\r\n").is_err_and(|e| e.contains("Content-Length")));
        assert!(answered(b"SSH-2.0\r\n").is_err_and(|e| e.contains("status line")));
        assert!(answered(b"HTTP/1.1 200 OK\r\n").is_err_and(|e| e.contains("closed")));
    }
}
