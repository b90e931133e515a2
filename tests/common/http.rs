//! A minimal HTTP/1.1 client for the review server's tests: one keep-alive connection, JSON
//! bodies, `Content-Length` framing (what the server sends), a read timeout so a test stops by
//! itself.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Client {
    stream: BufReader<TcpStream>,
    host: String,
    /// Extra header lines (e.g. `Authorization: Bearer ...`).
    pub headers: Vec<String>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.set_nodelay(true)?;
        Ok(Client { stream: BufReader::new(s), host: addr.to_string(), headers: vec![] })
    }

    /// Status and body of one request.
    pub fn request(&mut self, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\n", self.host);
        for h in &self.headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        let body = body.unwrap_or("");
        if method != "GET" {
            req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.stream.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        self.stream.read_line(&mut line)?;
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut len = None;
        loop {
            line.clear();
            self.stream.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse::<usize>().ok();
                }
            }
        }
        let len = len.ok_or_else(|| std::io::Error::other("response without Content-Length"))?;
        let mut buf = vec![0; len];
        self.stream.read_exact(&mut buf)?;
        Ok((status, String::from_utf8_lossy(&buf).into_owned()))
    }

    pub fn get(&mut self, path: &str) -> std::io::Result<(u16, String)> {
        self.request("GET", path, None)
    }

    pub fn post(&mut self, path: &str, json: &serde_json::Value) -> std::io::Result<(u16, String)> {
        self.request("POST", path, Some(&json.to_string()))
    }
}
