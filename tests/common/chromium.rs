//! Headless Chromium for the end-to-end tests: found, or installed from the distribution's
//! packages (Debian's `chromium`) when missing; run once with a time limit (`--screenshot`,
//! `--dump-dom`); or driven through the Chrome DevTools Protocol over its websocket
//! ([`Browser`]: open a page, evaluate JavaScript, press keys, type, take a screenshot).
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Proc, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

pub fn find_chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Chromium, installing Debian's package if needed; `Err` says why it cannot be had.
pub fn chromium() -> Result<PathBuf, String> {
    if let Some(p) = find_chromium() {
        return Ok(p);
    }
    let apt = |args: &[&str]| {
        Proc::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("apt-get: {e}"))
            .and_then(|s| if s.success() { Ok(()) } else { Err(format!("apt-get {} exited with {s}", args.join(" "))) })
    };
    let install = ["install", "-y", "-qq", "chromium"];
    if let Err(first) = apt(&install) {
        apt(&["update", "-qq"]).map_err(|e| format!("{first}; {e}"))?;
        apt(&install)?;
    }
    find_chromium().ok_or_else(|| "apt-get install chromium finished but /usr/bin/chromium is missing".into())
}

/// Chromium for a browser test, or `None` where it cannot be had: the reason is printed and the
/// test returns early (skips).
pub fn chromium_or_skip() -> Option<PathBuf> {
    chromium().map_err(|why| println!("skipped: chromium unavailable: {why}")).ok()
}

/// Runs `cmd` with stdout to `stdout_file`, killing it after `limit`.
pub fn run_limited(mut cmd: Proc, stdout_file: &Path, limit: Duration) -> Result<(), String> {
    let out = std::fs::File::create(stdout_file).map_err(|e| e.to_string())?;
    let mut child = cmd.stdout(out).stderr(Stdio::null()).spawn().map_err(|e| format!("cannot start chromium: {e}"))?;
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            return if st.success() { Ok(()) } else { Err(format!("chromium exited with {st}")) };
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("chromium took longer than {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn chromium_cmd(bin: &Path, profile: &Path) -> Proc {
    let mut c = Proc::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// A headless Chromium driven through the DevTools Protocol, attached to one page.
pub struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    next_id: u64,
    session: Option<String>,
}

impl Browser {
    /// Starts Chromium (profile in `profile`) and opens `url` in a `width` x `height` page.
    pub fn launch(bin: &Path, profile: &Path, url: &str, width: u32, height: u32) -> Result<Browser, String> {
        std::fs::create_dir_all(profile).map_err(|e| e.to_string())?;
        let child = chromium_cmd(bin, profile)
            .args(["--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", "about:blank"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start chromium: {e}"))?;
        // Chromium writes its port and browser path to DevToolsActivePort once it listens
        let port_file = profile.join("DevToolsActivePort");
        let start = Instant::now();
        let (port, path) = loop {
            if let Ok(t) = std::fs::read_to_string(&port_file) {
                let mut lines = t.lines();
                if let (Some(p), Some(path)) = (lines.next(), lines.next()) {
                    if let Ok(p) = p.trim().parse::<u16>() {
                        break (p, path.trim().to_string());
                    }
                }
            }
            if start.elapsed() > Duration::from_secs(60) {
                let mut c = child;
                let _ = c.kill();
                let _ = c.wait();
                return Err("chromium did not open its DevTools port within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("DevTools port {port}: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
        let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream).map_err(|e| format!("DevTools websocket: {e}"))?;
        let mut b = Browser { child, ws, next_id: 0, session: None };
        let target = b.call("Target.createTarget", json!({ "url": "about:blank" }))?;
        let target_id = target["targetId"].as_str().ok_or("no targetId")?.to_string();
        let attached = b.call("Target.attachToTarget", json!({ "targetId": target_id, "flatten": true }))?;
        b.session = Some(attached["sessionId"].as_str().ok_or("no sessionId")?.to_string());
        b.call("Emulation.setDeviceMetricsOverride", json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }))?;
        b.call("Page.enable", json!({}))?;
        b.call("Page.navigate", json!({ "url": url }))?;
        b.call("Page.bringToFront", json!({}))?;
        Ok(b)
    }

    /// Sends one command (to the page's session) and waits for its answer.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).map_err(|e| format!("{method}: {e}"))?;
        loop {
            let m = self.ws.read().map_err(|e| format!("{method}: {e}"))?;
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    return Err(format!("{method}: {e}"));
                }
                return Ok(v["result"].clone());
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    pub fn eval(&mut self, expr: &str) -> Result<Value, String> {
        let r = self.call("Runtime.evaluate", json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }))?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(format!("{expr}: {ex}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Waits until `expr` is true, up to `limit`.
    pub fn wait_for(&mut self, expr: &str, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if self.eval(expr).unwrap_or(Value::Null) == Value::Bool(true) {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!("waited {limit:?} for `{expr}`"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Presses and releases a key: one character, or Enter, Escape, Tab, Delete, Backspace, Arrow*.
    pub fn key(&mut self, key: &str) -> Result<(), String> {
        self.key_with(key, 0)
    }

    /// [`Browser::key`] with modifiers (1 Alt, 2 Ctrl, 4 Meta, 8 Shift).
    pub fn key_with(&mut self, key: &str, modifiers: u32) -> Result<(), String> {
        let (code, vk, text): (String, u32, Option<String>) = match key {
            "Enter" => ("Enter".into(), 13, Some("\r".into())),
            "Escape" => ("Escape".into(), 27, None),
            "Tab" => ("Tab".into(), 9, None),
            "Delete" => ("Delete".into(), 46, None),
            "Backspace" => ("Backspace".into(), 8, None),
            "ArrowLeft" => ("ArrowLeft".into(), 37, None),
            "ArrowUp" => ("ArrowUp".into(), 38, None),
            "ArrowRight" => ("ArrowRight".into(), 39, None),
            "ArrowDown" => ("ArrowDown".into(), 40, None),
            c if c.chars().count() == 1 => {
                let ch = c.chars().next().unwrap();
                let vk = if ch.is_ascii_alphanumeric() { ch.to_ascii_uppercase() as u32 } else if ch == '/' { 191 } else { 0 };
                let code = if ch.is_ascii_alphabetic() { format!("Key{}", ch.to_ascii_uppercase()) } else if ch.is_ascii_digit() { format!("Digit{ch}") } else { String::new() };
                (code, vk, Some(c.to_string()))
            }
            other => return Err(format!("no key '{other}'")),
        };
        let mut down = json!({ "type": if text.is_some() { "keyDown" } else { "rawKeyDown" }, "key": key, "code": code, "windowsVirtualKeyCode": vk, "modifiers": modifiers });
        if let Some(t) = &text {
            down["text"] = json!(t);
            down["unmodifiedText"] = json!(t);
        }
        self.call("Input.dispatchKeyEvent", down)?;
        self.call("Input.dispatchKeyEvent", json!({ "type": "keyUp", "key": key, "code": code, "windowsVirtualKeyCode": vk, "modifiers": modifiers }))?;
        Ok(())
    }

    /// Types `text` into the focused element (as an input method would).
    pub fn type_text(&mut self, text: &str) -> Result<(), String> {
        self.call("Input.insertText", json!({ "text": text })).map(|_| ())
    }

    /// A PNG screenshot of the page.
    pub fn screenshot(&mut self) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }))?;
        base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().ok_or("no screenshot data")?).map_err(|e| e.to_string())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
