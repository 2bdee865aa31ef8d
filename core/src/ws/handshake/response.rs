//! The one way tidings writes a plain HTTP answer.

use bytes::Bytes;

/// A complete HTTP/1.1 response after which the server closes the connection: status line,
/// `Connection: close`, any extra headers, `Content-Type` and `Content-Length`, then the body.
///
/// Every plain HTTP answer tidings sends is built here: refused upgrades
/// ([`RequestError::response`](super::RequestError::response)), the web page, `404`, `405`,
/// the `503` of a server that is full. The `101` of an accepted upgrade is not a plain
/// answer (the connection stays open) and has its own shape.
///
/// ```
/// use tidings_core::ws::HttpResponse;
/// let response = HttpResponse::text(404, "not found");
/// assert_eq!(
///     &response.to_bytes()[..],
///     b"HTTP/1.1 404 Not Found\r\nConnection: close\r\n\
///       Content-Type: text/plain; charset=utf-8\r\nContent-Length: 9\r\n\r\nnot found"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    status: u16,
    headers: Vec<(&'static str, String)>,
    content_type: &'static str,
    body: Bytes,
}

impl HttpResponse {
    /// A response with `status`, a body and its `Content-Type`. A `'static` body (a page
    /// embedded with `include_bytes!`) is not copied: see [`into_parts`](Self::into_parts).
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> HttpResponse {
        HttpResponse {
            status,
            headers: Vec::new(),
            content_type,
            body: body.into(),
        }
    }

    /// A response with a short UTF-8 text body (`text/plain; charset=utf-8`).
    pub fn text(status: u16, body: impl Into<String>) -> HttpResponse {
        HttpResponse::new(status, "text/plain; charset=utf-8", body.into())
    }

    /// Adds the header `name: value`. Mode returns and line feeds in `value` become
    /// spaces, so that no value can end the head early or add headers of its own.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> HttpResponse {
        let value = value.into().replace(['\r', '\n'], " ");
        self.headers.push((name, value));
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The status line and headers, up to and including the blank line that ends them.
    pub fn head(&self) -> Bytes {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nConnection: close\r\n",
            self.status,
            reason_phrase(self.status)
        );
        for (name, value) in &self.headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str("Content-Type: ");
        head.push_str(self.content_type);
        head.push_str(&format!("\r\nContent-Length: {}\r\n\r\n", self.body.len()));
        Bytes::from(head)
    }

    /// The head and the body, to be written in this order; the body is shared, not copied.
    pub fn into_parts(self) -> [Bytes; 2] {
        [self.head(), self.body]
    }

    /// The whole response in one buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut all = Vec::from(&self.head()[..]);
        all.extend_from_slice(&self.body);
        Bytes::from(all)
    }
}

/// The reason phrase for the statuses tidings sends (RFC 9110 §15); empty for others, which
/// the status line allows.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_come_between_connection_and_content_type() {
        let text = HttpResponse::text(405, "only GET")
            .header("Allow", "GET")
            .to_bytes();
        assert_eq!(
            &text[..],
            b"HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\nAllow: GET\r\n\
              Content-Type: text/plain; charset=utf-8\r\nContent-Length: 8\r\n\r\nonly GET"
        );
    }

    #[test]
    fn a_header_value_cannot_split_the_head() {
        let head = HttpResponse::text(503, "full")
            .header("Retry-After", "5\r\nSet-Cookie: x=1")
            .head();
        let head = std::str::from_utf8(&head).unwrap();
        assert!(
            head.contains("Retry-After: 5  Set-Cookie: x=1\r\n"),
            "{head}"
        );
        assert_eq!(head.matches("\r\n").count(), 6, "{head}");
    }

    #[test]
    fn a_static_body_is_shared_not_copied() {
        static PAGE: &[u8] = b"<p>hi</p>";
        let [head, body] = HttpResponse::new(200, "text/html", PAGE).into_parts();
        assert_eq!(body.as_ptr(), PAGE.as_ptr());
        assert!(head.ends_with(b"Content-Length: 9\r\n\r\n"));
    }
}
