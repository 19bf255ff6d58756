use super::wire::unescape_form;
use super::*;

#[test]
fn query_and_form_decoding() {
    assert_eq!(
        parse_query(b"json=%7B%22a%22%3A1%7D&x=a+b;x=2&&y"),
        vec![
            (b"json".to_vec(), br#"{"a":1}"#.to_vec()),
            (b"x".to_vec(), b"a b".to_vec()),
            (b"y".to_vec(), b"".to_vec()),
        ]
    );
    assert_eq!(unescape_form(b"%zz%4"), b"%zz%4".to_vec());
}

#[test]
fn tags_from_paths() {
    assert_eq!(tag_of(b"/app.login"), "app.login");
    assert_eq!(tag_of(b"/app/nested/path/"), "app.nested.path");
    assert_eq!(tag_of(b"/a//b"), "a..b");
    assert_eq!(tag_of(b"/"), "");
}

#[test]
fn to_f_like_ruby() {
    assert_eq!(ruby_to_f(b"1700000000.25"), 1700000000.25);
    assert_eq!(ruby_to_f(b"soon"), 0.0);
    assert_eq!(ruby_to_f(b"12abc"), 12.0);
    assert_eq!(ruby_to_f(b" -1.5e2x"), -150.0);
    assert_eq!(ruby_to_f(b"1_000"), 1000.0);
    assert_eq!(ruby_to_f(b".5"), 0.5);
}

#[test]
fn heads_and_chunks() {
    let req =
        b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-A: 2\r\nContent-Length: 3\r\n\r\nabc";
    let (h, used) = parse_head(req).unwrap().unwrap();
    assert_eq!(used, req.len() - 3);
    assert_eq!(h.content_length, Some(3));
    assert_eq!(
        h.headers[1].1,
        Value::Array(vec![Value::str("1"), Value::str("2")])
    );
    assert!(parse_head(b"POST / HTTP/1.1\r\nHost").unwrap().is_none());
    assert!(parse_head(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n").is_err());
    let (b, used) = decode_chunked(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\nrest", 100)
        .unwrap()
        .unwrap();
    assert_eq!((b.as_slice(), used), (&b"abcde"[..], 24));
    assert_eq!(decode_chunked(b"3\r\nab", 100), Ok(None));
    assert_eq!(decode_chunked(b"ff\r\n", 10), Err(ChunkError::TooLarge));
    assert!(decode_chunked(b"zz\r\n", 10).is_err());
}

#[test]
fn response_bytes() {
    let mut r = Response::new("200 OK", text_header(), vec![]);
    r.headers.push(("Connection", "Keep-Alive".into()));
    assert_eq!(
        r.to_bytes(),
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
            .to_vec()
    );
    assert_eq!(EMPTY_GIF.len(), 35);
}
