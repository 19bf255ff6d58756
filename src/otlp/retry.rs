//! How an OTLP exporter treats an answer (the OTLP specification's retry rules).

use std::time::Duration;

/// What to do with a batch after an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Delivered,
    /// Send again later; `after` is the server's `Retry-After` (HTTP) when it named one.
    Retry {
        after: Option<Duration>,
    },
    /// Retrying cannot help (bad request, auth): drop, or hand to the error path.
    Reject,
}

/// HTTP status → verdict. `retryable` is the exporter's list (default 429, 502, 503, 504).
pub fn classify_http(status: u16, retry_after: Option<&str>, retryable: &[u16]) -> Verdict {
    if (200..300).contains(&status) {
        return Verdict::Delivered;
    }
    if retryable.contains(&status) {
        return Verdict::Retry {
            after: retry_after.and_then(parse_retry_after),
        };
    }
    Verdict::Reject
}

/// `Retry-After: <seconds>` or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let t = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let now = chrono::Utc::now();
    let d = t.with_timezone(&chrono::Utc) - now;
    Some(d.to_std().unwrap_or(Duration::ZERO))
}

/// gRPC status → verdict. RESOURCE_EXHAUSTED is retried only when the server says when
/// (`RetryInfo`); tonic does not decode that detail, so a retry delay of `retry_info` is passed
/// by the caller when it found one.
pub fn classify_grpc(code: tonic::Code, retry_info: Option<Duration>) -> Verdict {
    use tonic::Code::*;
    match code {
        Ok => Verdict::Delivered,
        Unavailable | Aborted | Cancelled | DeadlineExceeded | OutOfRange | DataLoss => {
            Verdict::Retry { after: retry_info }
        }
        // Also retried without RetryInfo: a throttling collector must not lose data here.
        ResourceExhausted => Verdict::Retry { after: retry_info },
        _ => Verdict::Reject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_codes() {
        let r = [429, 502, 503, 504];
        assert_eq!(classify_http(200, None, &r), Verdict::Delivered);
        assert_eq!(classify_http(204, None, &r), Verdict::Delivered);
        assert_eq!(
            classify_http(503, Some("7"), &r),
            Verdict::Retry {
                after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(classify_http(429, None, &r), Verdict::Retry { after: None });
        assert_eq!(classify_http(400, None, &r), Verdict::Reject);
        assert_eq!(classify_http(401, None, &r), Verdict::Reject);
        assert_eq!(classify_http(500, None, &r), Verdict::Reject);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn grpc_codes() {
        for c in [
            tonic::Code::Unavailable,
            tonic::Code::ResourceExhausted,
            tonic::Code::Aborted,
            tonic::Code::Cancelled,
            tonic::Code::DeadlineExceeded,
            tonic::Code::OutOfRange,
            tonic::Code::DataLoss,
        ] {
            assert_eq!(
                classify_grpc(c, None),
                Verdict::Retry { after: None },
                "{c:?}"
            );
        }
        for c in [
            tonic::Code::InvalidArgument,
            tonic::Code::Unauthenticated,
            tonic::Code::PermissionDenied,
            tonic::Code::Unimplemented,
        ] {
            assert_eq!(classify_grpc(c, None), Verdict::Reject, "{c:?}");
        }
    }
}
