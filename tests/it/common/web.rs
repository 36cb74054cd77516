//! A small HTTP/1.1 client for the dashboard's tests: one request per connection, a cookie jar,
//! and the whole response kept (status, headers, body) so a test can check what went over the
//! wire. It sends what a browser would (Host, Origin on posts) unless a test says otherwise.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

pub struct WebResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl WebResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The `csrf` hidden field of the page's first form.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no csrf field in a {} page", self.status));
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }

    /// The whole response as sent (status line, headers, body), for leak checks.
    pub fn raw(&self) -> String {
        let mut s = format!("{}\n", self.status);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\n"));
        }
        s + &self.body
    }
}

pub struct WebClient {
    pub addr: String,
    /// Over TLS, trusting this CA (PEM) only; the ALPN protocol of the last connection.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub alpn: Option<Vec<u8>>,
    pub cookies: Vec<(String, String)>,
    /// Every response received, in order.
    pub seen: Vec<String>,
}

/// Percent-encodes a form (`application/x-www-form-urlencoded`).
pub fn form(fields: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish()
}

impl WebClient {
    pub fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_string(),
            tls: None,
            alpn: None,
            cookies: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// A client speaking HTTPS (offering `http/1.1` and `h2`), trusting only the CA in `ca`.
    pub fn with_tls(addr: &str, ca: &std::path::Path) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(ca).unwrap();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self {
            tls: Some(std::sync::Arc::new(config)),
            ..Self::new(addr)
        }
    }

    pub fn origin(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub async fn get(&mut self, path: &str) -> WebResponse {
        self.request("GET", path, &[], b"").await
    }

    /// A form post as the dashboard's own page sends it (its Origin).
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> WebResponse {
        let origin = self.origin();
        self.post_with(path, &[("Origin", &origin)], form(fields).as_bytes())
            .await
    }

    pub async fn post_with(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> WebResponse {
        let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
        h.extend_from_slice(headers);
        self.request("POST", path, &h, body).await
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> WebResponse {
        let tcp = tokio::net::TcpStream::connect(&self.addr).await.unwrap();
        let mut stream: Box<dyn Stream> = match &self.tls {
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .unwrap();
                self.alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                Box::new(tls)
            }
            None => Box::new(tcp),
        };
        let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str(&format!("Host: {}\r\n", self.addr));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req.push_str(&format!("Cookie: {}\r\n", jar.join("; ")));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(req.as_bytes()).await.unwrap();
        // A server may refuse (413) before reading all of a large body.
        let _ = stream.write_all(body).await;
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        let text = String::from_utf8(raw).expect("a UTF-8 response");
        let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
        let mut lines = head.lines();
        let status: u16 = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let res = WebResponse {
            status,
            headers,
            body: body.to_string(),
        };
        for c in res.set_cookies() {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() && !c.contains("Max-Age=0") {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
        self.seen.push(res.raw());
        res
    }

    /// Signs in with `key` through the form, as a browser would; the answer to the POST.
    pub async fn sign_in(&mut self, key: &str) -> WebResponse {
        let page = self.get("/login").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.csrf();
        self.post("/login", &[("csrf", &csrf), ("key", key)]).await
    }

    /// The CSRF token of the signed-in session (from any page's forms).
    pub async fn csrf(&mut self) -> String {
        let page = self.get("/environments").await;
        assert_eq!(page.status, 200, "{}", page.body);
        page.csrf()
    }
}
