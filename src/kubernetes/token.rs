//! A bearer token read from a file and re-read as soon as the file changes, so a rotated
//! service-account token (kubelet swaps the projected volume's files) is used by the next
//! request, not within kube's own 60 s refresh. Each request costs one `stat`; the file is
//! read only when its modification time, size or inode changed, or after a 401.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};

/// What identifies one version of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    mtime: Option<SystemTime>,
    len: u64,
    ino: u64,
    dev: u64,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            mtime: m.modified().ok(),
            len: m.len(),
            ino: m.ino(),
            dev: m.dev(),
        }
    }
}

#[derive(Default)]
struct Cached {
    stamp: Option<Stamp>,
    header: Option<HeaderValue>,
    /// The server refused the token: read the file again even if it looks unchanged.
    stale: bool,
}

/// The token file and the `Authorization` value last read from it.
pub struct TokenFile {
    path: PathBuf,
    cached: parking_lot::Mutex<Cached>,
}

impl TokenFile {
    /// Reads the file once; an unreadable or empty file is an error here, at start.
    pub fn new(path: &Path) -> Result<TokenFile, String> {
        let t = TokenFile {
            path: path.to_path_buf(),
            cached: parking_lot::Mutex::new(Cached::default()),
        };
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read bearer_token_file {}: {e}", path.display()))?;
        match t.header() {
            Some(_) => Ok(t),
            None => Err(format!(
                "bearer_token_file {} holds no usable token",
                path.display()
            )),
        }
    }

    /// The `Authorization` header for the next request. When the file cannot be read or is
    /// empty (mid-rotation), the last token read is kept, as client-go does.
    pub fn header(&self) -> Option<HeaderValue> {
        let meta = std::fs::metadata(&self.path);
        let mut c = self.cached.lock();
        if let Ok(m) = meta {
            let stamp = Stamp::of(&m);
            if c.stale || c.stamp != Some(stamp) {
                if let Ok(text) = std::fs::read_to_string(&self.path) {
                    let token = text.trim();
                    if !token.is_empty() {
                        if let Ok(mut h) = HeaderValue::from_str(&format!("Bearer {token}")) {
                            h.set_sensitive(true);
                            if c.header.is_some() && c.header.as_ref() != Some(&h) {
                                tracing::debug!(
                                    "kubernetes: bearer_token_file {} changed, using the new token",
                                    self.path.display()
                                );
                            }
                            c.header = Some(h);
                        }
                    }
                    c.stamp = Some(stamp);
                    c.stale = false;
                }
            }
        }
        c.header.clone()
    }

    /// The server answered 401: the next request reads the file again.
    fn refused(&self) {
        self.cached.lock().stale = true;
    }
}

/// Sets `Authorization` from a [`TokenFile`] on every request of the kube client.
#[derive(Clone)]
pub struct TokenLayer(pub Arc<TokenFile>);

impl<S> tower_layer::Layer<S> for TokenLayer {
    type Service = TokenService<S>;

    fn layer(&self, inner: S) -> TokenService<S> {
        TokenService {
            inner,
            token: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct TokenService<S> {
    inner: S,
    token: Arc<TokenFile>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for TokenService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        if let Some(h) = self.token.header() {
            req.headers_mut().insert(AUTHORIZATION, h);
        }
        let token = self.token.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            if resp.status() == StatusCode::UNAUTHORIZED {
                token.refused();
            }
            Ok(resp)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_read_again_and_a_vanished_one_keeps_the_last_token() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "one\n").unwrap();
        let t = TokenFile::new(&p).unwrap();
        assert_eq!(t.header().unwrap(), "Bearer one");
        // Replaced as kubelet does it: a new file renamed over the old one.
        std::fs::write(dir.path().join("new"), "two").unwrap();
        std::fs::rename(dir.path().join("new"), &p).unwrap();
        assert_eq!(t.header().unwrap(), "Bearer two");
        std::fs::remove_file(&p).unwrap();
        assert_eq!(t.header().unwrap(), "Bearer two");
        std::fs::write(&p, "").unwrap();
        assert_eq!(t.header().unwrap(), "Bearer two");
        std::fs::write(&p, "three").unwrap();
        assert_eq!(t.header().unwrap(), "Bearer three");
        assert!(TokenFile::new(&dir.path().join("missing")).is_err());
        std::fs::write(&p, " \n").unwrap();
        assert!(TokenFile::new(&p).is_err());
    }
}
