//! WASI for plugins: no files, no sockets, no environment; stdout and stderr
//! captured into bounded buffers; the clock and the *insecure* random source
//! real only if granted; sleeps end at the call's deadline at the latest.
//!
//! The secure source (`wasi:random/random`) is always real randomness,
//! granted or not: plugins draw salts, ids and keys from it, and a
//! deterministic stream there would repeat them across instances and
//! restarts. Only `wasi:random/insecure` and `insecure-seed`, which promise
//! nothing, are fixed-seed without the `random` grant (reproducible runs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::clocks::WasiClocksCtxView;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host as _;
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamResult, subscribe};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiView};

use super::Grants;
use crate::plugin::PluginState;

/// Bytes of stdout/stderr kept per call.
pub const OUTPUT_CAPACITY: usize = 16 * 1024;

/// A bounded capture of a plugin's stdout or stderr. Bytes past the capacity
/// are counted and dropped, never an error to the plugin.
#[derive(Debug, Clone, Default)]
pub struct OutputCapture {
    inner: Arc<Mutex<Captured>>,
    /// Set by writes, cleared by [`OutputCapture::take`]: lets the common
    /// case (nothing written) skip the lock.
    written: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: usize,
}

impl OutputCapture {
    /// Takes what was captured so far, leaving the buffer empty; `None`
    /// when nothing was written (the common case, kept allocation-free).
    pub fn take(&self) -> Option<String> {
        if !self.written.swap(false, Ordering::Acquire) {
            return None;
        }
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if c.bytes.is_empty() && c.dropped == 0 {
            return None;
        }
        let mut text = String::from_utf8_lossy(&c.bytes).into_owned();
        if c.dropped > 0 {
            text.push_str(&format!("\n[{} more bytes dropped]", c.dropped));
        }
        c.bytes.clear();
        c.dropped = 0;
        Some(text)
    }

    fn write(&self, bytes: &[u8]) {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let room = OUTPUT_CAPACITY.saturating_sub(c.bytes.len());
        let n = room.min(bytes.len());
        c.bytes.extend_from_slice(&bytes[..n]);
        c.dropped += bytes.len() - n;
        self.written.store(true, Ordering::Release);
    }
}

impl IsTerminal for OutputCapture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputCapture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputCapture {
    async fn ready(&mut self) {}
}

impl OutputStream for OutputCapture {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        OutputCapture::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for OutputCapture {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        OutputCapture::write(&self, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// A wall clock frozen at the Unix epoch, for plugins without `clock`.
#[derive(Debug, Clone, Copy)]
struct FrozenWallClock;

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// A monotonic clock that never advances, for plugins without `clock`.
#[derive(Debug, Clone, Copy)]
struct FrozenMonotonicClock;

impl HostMonotonicClock for FrozenMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Builds the WASI context of one instance.
pub fn build_ctx(grants: &Grants, stdout: &OutputCapture, stderr: &OutputCapture) -> WasiCtx {
    let mut b = WasiCtxBuilder::new();
    b.stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    if !grants.clock {
        b.wall_clock(FrozenWallClock)
            .monotonic_clock(FrozenMonotonicClock);
    }
    // The secure source stays WASI's default (a CSPRNG seeded from the
    // OS) in every case; see the module docs.
    if !grants.random {
        b.insecure_random(rand::rngs::StdRng::seed_from_u64(0x6361_702d_696e_7365))
            .insecure_random_seed(0x6361_702d_7365_6564);
    }
    b.build()
}

/// The WASI interface whose subscriptions [`bound_sleeps`] replaces.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// A sleep that ends at the time the plugin asked for or at the call's
/// deadline, whichever comes first.
struct BoundedSleep(tokio::time::Instant);

#[wasmtime_wasi::async_trait]
impl Pollable for BoundedSleep {
    async fn ready(&mut self) {
        tokio::time::sleep_until(self.0).await;
    }
}

/// A pollable that is ready `wait` from now, or at `deadline` if sooner.
fn sleep_for(state: &mut PluginState, wait: Duration) -> wasmtime::Result<Resource<DynPollable>> {
    let deadline = state.deadline;
    let until = Instant::now()
        .checked_add(wait)
        .map_or(deadline, |t| t.min(deadline));
    let table = state.ctx().table;
    let sleep = table.push(BoundedSleep(until.into()))?;
    subscribe(table, sleep)
}

/// Replaces WASI's `monotonic-clock.subscribe-*` so that no sleep outlives
/// the call's deadline.
///
/// Calls carry no host timer of their own (it would cost every call a
/// timer registration); epoch interruption bounds time spent running
/// WebAssembly, and this bounds time spent waiting in WASI: the other
/// pollables a plugin can reach (its stdout and stderr, empty stdin) are
/// always ready, and sockets and files are not available. Once the deadline
/// has passed the plugin wakes, and the next epoch check stops it.
pub(crate) fn bound_sleeps(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store, (nanos,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
            Ok((sleep_for(store.data_mut(), Duration::from_nanos(nanos))?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store, (when,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
            let state: &mut PluginState = store.data_mut();
            let view = state.ctx();
            let now = WasiClocksCtxView {
                ctx: view.ctx.clocks(),
                table: view.table,
            }
            .now()?;
            let wait = Duration::from_nanos(when.saturating_sub(now));
            Ok((sleep_for(state, wait)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use wasmtime_wasi::p2::bindings::random::{insecure, random};

    use super::*;

    fn ctx(grants: &Grants) -> WasiCtx {
        build_ctx(grants, &OutputCapture::default(), &OutputCapture::default())
    }

    #[test]
    fn secure_random_is_real_randomness_without_the_grant() {
        let grants = Grants::default();
        assert!(!grants.random);
        let (mut a, mut b) = (ctx(&grants), ctx(&grants));
        let first = random::Host::get_random_bytes(a.random(), 32).expect("bytes");
        let second = random::Host::get_random_bytes(b.random(), 32).expect("bytes");
        assert_ne!(first, second, "two instances drew the same secure bytes");
        let again = random::Host::get_random_bytes(a.random(), 32).expect("bytes");
        assert_ne!(first, again);
    }

    #[test]
    fn only_the_insecure_source_is_deterministic_without_the_grant() {
        let grants = Grants::default();
        let (mut a, mut b) = (ctx(&grants), ctx(&grants));
        assert_eq!(
            insecure::Host::get_insecure_random_bytes(a.random(), 32).expect("bytes"),
            insecure::Host::get_insecure_random_bytes(b.random(), 32).expect("bytes"),
        );
    }
}
