//! A scripted user agent for the login and consent pages, shared by the end-to-end tests.

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use std::collections::BTreeMap;

/// A user agent that keeps cookies and never follows redirects by itself.
pub struct Agent {
    http: reqwest::Client,
    /// The cookies held, by name.
    pub cookies: BTreeMap<String, String>,
}

pub struct Page {
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The response body.
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the hidden input `name` in the page.
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("closing quote") + start;
        html_unescape(&self.body[start..end])
    }
}

pub fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#x2f;", "/")
}

impl Agent {
    pub fn new() -> Self {
        Self::with_builder(reqwest::Client::builder())
    }

    /// A user agent on a client built from `builder` (e.g. one that trusts a test CA).
    pub fn with_builder(builder: reqwest::ClientBuilder) -> Self {
        let http = builder
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            http,
            cookies: BTreeMap::new(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        self.try_send(req).await.expect("server answers")
    }

    /// Sends `req`; the transport error when no answer came (a test that kills servers).
    pub async fn try_send(&mut self, req: reqwest::RequestBuilder) -> Result<Page, reqwest::Error> {
        let resp = req.header("cookie", self.cookie_header()).send().await?;
        for value in resp.headers().get_all(SET_COOKIE) {
            let pair = value
                .to_str()
                .expect("ascii")
                .split(';')
                .next()
                .expect("pair");
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Ok(Page {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await?,
        })
    }

    /// A GET; the transport error when no answer came.
    pub async fn try_get(&mut self, url: &str) -> Result<Page, reqwest::Error> {
        let req = self.http.get(url);
        self.try_send(req).await
    }

    /// A form post; the transport error when no answer came.
    pub async fn try_post(
        &mut self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<Page, reqwest::Error> {
        let req = self.http.post(url).form(form);
        self.try_send(req).await
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let req = self.http.get(url);
        self.send(req).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(url).form(form);
        self.send(req).await
    }

    /// A form post with extra request headers (what a browser adds: `Origin`, `Sec-Fetch-Site`).
    pub async fn post_with(
        &mut self,
        url: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self.http.post(url).form(form);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(req).await
    }

    /// Submits the login page `login` of the server at `base` (`http://host:port`) as
    /// `username` with `password`: the answer, a 303 to what comes next when they are right.
    pub async fn submit_login(
        &mut self,
        base: &str,
        login: &Page,
        username: &str,
        password: &str,
    ) -> Page {
        self.post(
            &format!("{base}/login"),
            &[
                ("csrf_token", &login.field("csrf_token")),
                ("request", &login.field("request")),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// Answers the consent page `consent` of the server at `base` with `decision` (`allow` or
    /// `deny`): the answer, a 303 back to the client.
    pub async fn submit_consent(&mut self, base: &str, consent: &Page, decision: &str) -> Page {
        self.post(
            &format!("{base}/consent"),
            &[
                ("csrf_token", &consent.field("csrf_token")),
                ("request", &consent.field("request")),
                ("decision", decision),
            ],
        )
        .await
    }

    /// Another user agent holding copies of this one's cookies (a stolen or copied cookie jar).
    pub fn copy(&self) -> Self {
        let mut other = Self::new();
        other.cookies = self.cookies.clone();
        other
    }
}
