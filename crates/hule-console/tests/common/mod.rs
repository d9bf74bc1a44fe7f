//! What the console's handler tests share: a client that keeps its session cookie, and the CSRF token of a page.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

pub struct Client {
    pub app: axum::Router,
    pub cookie: Option<String>,
}

pub struct Got {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Client {
    pub async fn send(&mut self, req: Request<Body>) -> Got {
        let res = self.app.clone().oneshot(req).await.expect("response");
        // Every Set-Cookie: a value replaces the cookie of that name, an empty one removes it.
        let mut jar: Vec<(String, String)> = self
            .cookie
            .as_deref()
            .unwrap_or("")
            .split("; ")
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for c in res.headers().get_all(header::SET_COOKIE) {
            let pair = c.to_str().expect("cookie").split(';').next().expect("pair");
            let (name, value) = pair.split_once('=').expect("name=value");
            jar.retain(|(k, _)| k != name);
            if !value.is_empty() {
                jar.push((name.to_owned(), value.to_owned()));
            }
        }
        self.cookie = (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        });
        let status = res.status();
        let location = res
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().expect("location").to_owned());
        let body = res.into_body().collect().await.expect("body").to_bytes();
        Got {
            status,
            location,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub fn request(&self, method: &str, uri: &str, form: Option<String>) -> Request<Body> {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "console.test");
        if let Some(c) = &self.cookie {
            b = b.header(header::COOKIE, c);
        }
        match form {
            Some(f) => b
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(f))
                .expect("request"),
            None => b.body(Body::empty()).expect("request"),
        }
    }

    pub async fn get(&mut self, uri: &str) -> Got {
        let req = self.request("GET", uri, None);
        self.send(req).await
    }

    pub async fn post(&mut self, uri: &str, form: &str) -> Got {
        let req = self.request("POST", uri, Some(form.to_owned()));
        self.send(req).await
    }

    pub async fn login(&mut self, user: &str, password: &str) -> Got {
        self.post("/login", &format!("user={user}&password={password}"))
            .await
    }
}

pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[at..].split('"').next().expect("token").to_owned()
}

pub mod idp;
