//! The Marketplace client against servers that misbehave: whatever answers
//! at the Marketplace's address cannot make the client buffer without end.

use cap_marketplace::client::{ClientError, MAX_JSON_BYTES, MAX_PROBLEM_BYTES, MarketplaceClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The public key the fake server announces.
fn known_key() -> String {
    cap_marketplace::keys::SecretKey::from_seed(&[1; 32])
        .public()
        .to_hex()
}

/// How a fake server frames its answer.
#[derive(Clone, Copy)]
enum Framing {
    /// With `Content-Length`.
    Length,
    /// Chunked, no length announced.
    Chunked,
}

/// Serves one answer: `status`, and a JSON object `{"public_key": …,
/// "code": …, "padding": "aaa…"}` of about `size` bytes; returns the URL.
async fn serve_once(status: &'static str, size: usize, framing: Framing) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let head = format!(
            "{{\"public_key\":\"{}\",\"code\":\"huge\",\"detail\":\"big\",\"padding\":\"",
            known_key()
        );
        let tail = "\"}";
        let padding = size.saturating_sub(head.len() + tail.len());
        let framing_header = match framing {
            Framing::Length => format!("content-length: {}\r\n", head.len() + padding + tail.len()),
            Framing::Chunked => "transfer-encoding: chunked\r\n".to_owned(),
        };
        let response_head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{framing_header}connection: close\r\n\r\n"
        );
        let chunked = matches!(framing, Framing::Chunked);
        let write = async |socket: &mut tokio::net::TcpStream, data: Vec<u8>| {
            if chunked {
                let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
                framed.extend_from_slice(&data);
                framed.extend_from_slice(b"\r\n");
                socket.write_all(&framed).await
            } else {
                socket.write_all(&data).await
            }
        };
        if socket.write_all(response_head.as_bytes()).await.is_err()
            || write(&mut socket, head.into_bytes()).await.is_err()
        {
            return;
        }
        let chunk = vec![b'a'; 64 * 1024];
        let mut left = padding;
        while left > 0 {
            let n = left.min(chunk.len());
            if write(&mut socket, chunk[..n].to_vec()).await.is_err() {
                // The client hung up: what a bounded reader does.
                return;
            }
            left -= n;
        }
        let _ = write(&mut socket, tail.as_bytes().to_vec()).await;
        if matches!(framing, Framing::Chunked) {
            let _ = socket.write_all(b"0\r\n\r\n").await;
        }
        let _ = socket.shutdown().await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_json_answer_past_the_bound_is_refused_whether_announced_or_streamed() {
    for framing in [Framing::Length, Framing::Chunked] {
        // A valid answer just past the bound: read whole, it would parse.
        let url = serve_once("200 OK", MAX_JSON_BYTES as usize + 1024, framing).await;
        let client = MarketplaceClient::new(&url).expect("client");
        let err = client.marketplace_key().await.unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::TooLarge {
                    limit: MAX_JSON_BYTES
                }
            ),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_json_answer_within_the_bound_is_read() {
    let url = serve_once("200 OK", 1024 * 1024, Framing::Chunked).await;
    let client = MarketplaceClient::new(&url).expect("client");
    let key = client.marketplace_key().await.expect("a key");
    assert_eq!(key.to_hex(), known_key());
}

#[tokio::test]
async fn a_problem_document_past_its_bound_is_refused() {
    for framing in [Framing::Length, Framing::Chunked] {
        let url = serve_once(
            "500 Internal Server Error",
            MAX_PROBLEM_BYTES as usize + 1024,
            framing,
        )
        .await;
        let client = MarketplaceClient::new(&url).expect("client");
        let err = client.marketplace_key().await.unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::TooLarge {
                    limit: MAX_PROBLEM_BYTES
                }
            ),
            "{err}"
        );
    }
}
