//! ShapedStream timing under tokio's paused clock, and the validation of settings.

use super::*;
use futures::io::AsyncWriteExt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::time::Instant;

/// What reached the "socket": each write with the (paused) time it happened.
#[derive(Default)]
struct Log {
    writes: Vec<(Instant, Vec<u8>)>,
    closed_at: Option<Instant>,
}

/// A socket that records writes and never has anything to read.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Log>>);

impl Recorder {
    fn bytes(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap()
            .writes
            .iter()
            .flat_map(|(_, b)| b.clone())
            .collect()
    }

    /// When the byte at `index` of the stream was written.
    fn time_of_byte(&self, index: usize) -> Instant {
        let log = self.0.lock().unwrap();
        let mut seen = 0;
        for (at, bytes) in &log.writes {
            seen += bytes.len();
            if index < seen {
                return *at;
            }
        }
        panic!("byte {index} was never written ({seen} were)");
    }
}

impl futures::io::AsyncRead for Recorder {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Pending
    }
}

impl futures::io::AsyncWrite for Recorder {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0
            .lock()
            .unwrap()
            .writes
            .push((Instant::now(), buf.to_vec()));
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.lock().unwrap().closed_at = Some(Instant::now());
        Poll::Ready(Ok(()))
    }
}

fn shape(latency: f64, jitter: f64, loss: f64, kbit: f64) -> LinkShape {
    LinkShape::new(latency, jitter, loss, kbit).expect("valid shape")
}

fn shaped(table: &LinkTable, peer: PeerId) -> (ShapedStream<Recorder>, Recorder) {
    let socket = Recorder::default();
    (
        ShapedStream::new(socket.clone(), peer, table.clone()),
        socket,
    )
}

#[tokio::test(start_paused = true)]
async fn an_unshaped_link_writes_straight_through_without_a_task() {
    let table = LinkTable::with_seed(1);
    let (mut stream, socket) = shaped(&table, PeerId::random());
    let t0 = Instant::now();
    stream.write_all(b"hello").await.unwrap();
    assert!(!stream.is_shaped());
    assert_eq!(socket.bytes(), b"hello");
    assert_eq!(socket.time_of_byte(0), t0);
    // Loss alone does not shape what we send either.
    let peer = PeerId::random();
    table.set(peer, shape(0.0, 0.0, 50.0, 0.0));
    let (mut lossy, _) = shaped(&table, peer);
    lossy.write_all(b"x").await.unwrap();
    assert!(!lossy.is_shaped());
}

#[tokio::test(start_paused = true)]
async fn every_chunk_is_released_after_the_delay_and_close_waits_for_the_link() {
    let table = LinkTable::with_seed(2);
    let peer = PeerId::random();
    table.set(peer, shape(200.0, 0.0, 0.0, 0.0));
    let (mut stream, socket) = shaped(&table, peer);
    let t0 = Instant::now();
    stream.write_all(b"first").await.unwrap();
    stream.flush().await.unwrap();
    assert_eq!(
        Instant::now(),
        t0,
        "write and flush do not wait for the far end"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.write_all(b"second").await.unwrap();
    stream.close().await.unwrap();
    let closed = Instant::now();
    assert_eq!(socket.bytes(), b"firstsecond");
    assert_eq!(socket.time_of_byte(0) - t0, Duration::from_millis(200));
    assert_eq!(socket.time_of_byte(5) - t0, Duration::from_millis(250));
    assert_eq!(
        closed - t0,
        Duration::from_millis(250),
        "close returns once drained"
    );
    let closed_at = socket.0.lock().unwrap().closed_at.expect("socket closed");
    assert!(closed_at >= socket.time_of_byte(10));
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_arrivals_but_never_reorders_bytes() {
    let table = LinkTable::with_seed(3);
    let peer = PeerId::random();
    table.set(peer, shape(100.0, 80.0, 0.0, 0.0));
    let (mut stream, socket) = shaped(&table, peer);
    let t0 = Instant::now();
    let mut sent_at = Vec::new();
    for i in 0..200u8 {
        sent_at.push(Instant::now());
        stream.write_all(&[i]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stream.close().await.unwrap();
    let expected: Vec<u8> = (0..200u8).collect();
    assert_eq!(
        socket.bytes(),
        expected,
        "bytes arrive in the order written"
    );
    let mut previous = t0;
    let mut delays = Vec::new();
    for (i, sent) in sent_at.iter().enumerate() {
        let at = socket.time_of_byte(i);
        assert!(at >= previous, "release times are monotonic");
        previous = at;
        let delay = at - *sent;
        assert!(
            delay >= Duration::from_millis(20),
            "byte {i}: {delay:?} below latency − jitter"
        );
        // Monotonic release can hold a byte behind an earlier, later-drawn one.
        assert!(delay <= Duration::from_millis(182), "byte {i}: {delay:?}");
        delays.push(delay);
    }
    let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
    assert!(distinct.len() > 20, "jitter varies the delay: {distinct:?}");
}

#[tokio::test(start_paused = true)]
async fn a_bandwidth_cap_paces_bytes_at_the_rate() {
    let table = LinkTable::with_seed(4);
    let peer = PeerId::random();
    // 80 kbit/s = 10,000 bytes/s.
    table.set(peer, shape(0.0, 0.0, 0.0, 80.0));
    let (mut stream, socket) = shaped(&table, peer);
    let t0 = Instant::now();
    stream.write_all(&vec![7u8; 50_000]).await.unwrap();
    stream.close().await.unwrap();
    assert_eq!(socket.bytes().len(), 50_000);
    let half = socket.time_of_byte(25_000) - t0;
    let last = socket.time_of_byte(49_999) - t0;
    assert!(
        (Duration::from_millis(2_400)..=Duration::from_millis(2_600)).contains(&half),
        "half the bytes after {half:?}"
    );
    assert!(
        (Duration::from_millis(4_850)..=Duration::from_millis(5_000)).contains(&last),
        "50 kB at 10 kB/s took {last:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn delay_and_cap_add_up() {
    let table = LinkTable::with_seed(5);
    let peer = PeerId::random();
    table.set(peer, shape(300.0, 0.0, 0.0, 80.0));
    let (mut stream, socket) = shaped(&table, peer);
    let t0 = Instant::now();
    stream.write_all(&vec![1u8; 10_000]).await.unwrap();
    stream.close().await.unwrap();
    assert_eq!(socket.time_of_byte(0) - t0, Duration::from_millis(300));
    let last = socket.time_of_byte(9_999) - t0;
    assert!(
        (Duration::from_millis(1_250)..=Duration::from_millis(1_300)).contains(&last),
        "{last:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn shaping_follows_the_table_on_an_open_connection() {
    let table = LinkTable::with_seed(6);
    let peer = PeerId::random();
    let (mut stream, socket) = shaped(&table, peer);
    let t0 = Instant::now();
    stream.write_all(b"a").await.unwrap();
    assert_eq!(socket.time_of_byte(0), t0);
    table.set(peer, shape(100.0, 0.0, 0.0, 0.0));
    stream.write_all(b"b").await.unwrap();
    assert!(stream.is_shaped());
    // Reset while "b" is still in the link: "c" goes at once but not before "b".
    table.set(peer, LinkShape::NONE);
    stream.write_all(b"c").await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    stream.write_all(b"d").await.unwrap();
    stream.close().await.unwrap();
    assert_eq!(socket.bytes(), b"abcd");
    assert_eq!(socket.time_of_byte(1) - t0, Duration::from_millis(100));
    assert_eq!(socket.time_of_byte(2) - t0, Duration::from_millis(100));
    assert_eq!(socket.time_of_byte(3) - t0, Duration::from_millis(150));
    // Other peers were never shaped.
    assert!(table.get(&PeerId::random()).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_slow_link_holds_writes_back_at_the_in_flight_bound() {
    let table = LinkTable::with_seed(7);
    let peer = PeerId::random();
    // 8,000 kbit/s = 1 MB/s: the bound (4 MiB) fills before the link drains it.
    table.set(peer, shape(0.0, 0.0, 0.0, 8_000.0));
    let (mut stream, socket) = shaped(&table, peer);
    let t0 = Instant::now();
    let total = MAX_IN_FLIGHT + 1_000_000;
    stream.write_all(&vec![3u8; total]).await.unwrap();
    let accepted_after = Instant::now() - t0;
    assert!(
        accepted_after >= Duration::from_millis(900),
        "the last MB waited for room: {accepted_after:?}"
    );
    stream.close().await.unwrap();
    assert_eq!(socket.bytes().len(), total);
}

#[test]
fn loss_draws_follow_the_share_and_the_seed() {
    let table = LinkTable::with_seed(8);
    let (none, all, some) = (PeerId::random(), PeerId::random(), PeerId::random());
    table.set(all, shape(0.0, 0.0, 100.0, 0.0));
    table.set(some, shape(0.0, 0.0, 25.0, 0.0));
    assert!((0..1000).all(|_| !table.loses(&none)));
    assert!((0..1000).all(|_| table.loses(&all)));
    let lost = (0..10_000).filter(|_| table.loses(&some)).count();
    assert!((2_200..2_800).contains(&lost), "25 % of 10,000: {lost}");
    let again = LinkTable::with_seed(8);
    again.set(some, shape(0.0, 0.0, 25.0, 0.0));
    let replay = LinkTable::with_seed(8);
    replay.set(some, shape(0.0, 0.0, 25.0, 0.0));
    let a: Vec<bool> = (0..100).map(|_| again.loses(&some)).collect();
    let b: Vec<bool> = (0..100).map(|_| replay.loses(&some)).collect();
    assert_eq!(a, b, "the same seed loses the same messages");
}

#[test]
fn settings_are_validated() {
    assert!(LinkShape::new(0.0, 0.0, 0.0, 0.0).unwrap().is_none());
    let ok = LinkShape::new(200.0, 10.0, 100.0, 800.0).unwrap();
    assert_eq!(ok.latency(), Duration::from_millis(200));
    assert_eq!(ok.bandwidth_kbit(), Some(800.0));
    assert!(ok.shapes_outbound());
    for (bad, field) in [
        (LinkShape::new(-1.0, 0.0, 0.0, 0.0), "latency_ms"),
        (LinkShape::new(f64::NAN, 0.0, 0.0, 0.0), "latency_ms"),
        (LinkShape::new(0.0, -5.0, 0.0, 0.0), "jitter_ms"),
        (LinkShape::new(0.0, 0.0, 100.5, 0.0), "loss_pct"),
        (LinkShape::new(0.0, 0.0, -0.1, 0.0), "loss_pct"),
        (LinkShape::new(0.0, 0.0, f64::INFINITY, 0.0), "loss_pct"),
        (
            LinkShape::new(MAX_DELAY_MS + 1.0, 0.0, 0.0, 0.0),
            "latency_ms",
        ),
        (LinkShape::new(0.0, 0.0, 0.0, -8.0), "bandwidth_kbit"),
        (LinkShape::new(0.0, 0.0, 0.0, 0.5), "bandwidth_kbit"),
    ] {
        let e = bad.expect_err(field);
        assert!(e.to_string().contains(field), "{e}");
    }
    let parse = |v: serde_json::Value| serde_json::from_value::<LinkShaping>(v);
    let req = parse(serde_json::json!({"latency_ms": 50, "loss_pct": 2.5})).unwrap();
    assert_eq!(
        LinkShape::try_from(req).unwrap(),
        LinkShape::new(50.0, 0.0, 2.5, 0.0).unwrap()
    );
    assert!(
        parse(serde_json::json!({"latency": 50})).is_err(),
        "typos are refused"
    );
    assert!(parse(serde_json::json!({"latency_ms": "50"})).is_err());
    assert!(LinkShape::try_from(parse(serde_json::json!({"loss_pct": 101})).unwrap()).is_err());
}

#[test]
fn the_table_lists_sets_and_removes() {
    let table = LinkTable::with_seed(9);
    let (a, b) = (PeerId::random(), PeerId::random());
    assert_eq!(table.set(a, shape(10.0, 0.0, 0.0, 0.0)), None);
    table.set(b, shape(0.0, 0.0, 5.0, 0.0));
    assert_eq!(table.list().len(), 2);
    assert_eq!(
        table.set(a, LinkShape::NONE),
        Some(shape(10.0, 0.0, 0.0, 0.0))
    );
    assert_eq!(table.list(), vec![(b, shape(0.0, 0.0, 5.0, 0.0))]);
}
