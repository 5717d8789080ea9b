//! Stale keep-alive connections: which request went out on a pooled connection, and whether
//! anything came back, so that [`super::Http::get`] can send a request again when the server
//! had closed that connection before answering.
//!
//! Every connection the agent makes is wrapped (the last link of the connector chain, after TLS)
//! in a [`Tracked`] transport, which notes in a thread-local what the latest request met. A
//! worker makes one request at a time, and ureq does all of a call's I/O on the calling thread.

use std::cell::Cell;
use std::io;
use std::time::{Duration, Instant};

use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

thread_local! {
    /// What the latest request sent from this thread met.
    pub(super) static LAST_REQUEST: Cell<Sent> = const { Cell::new(Sent { reused: false, answered: false }) };
}

/// See [`LAST_REQUEST`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sent {
    /// It went out on a connection that had already carried a response: a pooled one.
    reused: bool,
    /// At least one byte came back after it was sent.
    answered: bool,
}

impl Sent {
    pub(super) fn met_a_stale_connection(self) -> bool {
        self.reused && !self.answered
    }
}

/// Whether a failed call ended the way a connection closed by the server ends: reset, or at its
/// end, before any answer. A timeout is not one of them: that server is slow, not gone.
pub(super) fn closed_unanswered(e: &ureq::Error) -> bool {
    use io::ErrorKind as K;
    match e {
        ureq::Error::Io(e) => matches!(
            e.kind(),
            K::UnexpectedEof
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::BrokenPipe
                | K::NotConnected
        ),
        _ => false,
    }
}

/// The last link of the connector chain: wraps every new connection (after TLS) in [`Tracked`].
#[derive(Debug)]
pub(super) struct Tracking;

impl<In: Transport> Connector<In> for Tracking {
    type Out = Tracked<In>;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| Tracked {
            inner,
            answered_before: false,
            sending: false,
            heard_at: None,
        }))
    }
}

/// A connection that records, in [`LAST_REQUEST`], whether each request it carries is its first
/// and whether anything came back. HTTP/1.1 without pipelining alternates: a request is the
/// writes after the last read.
#[derive(Debug)]
pub(super) struct Tracked<T> {
    inner: T,
    /// A response (or part of one) has arrived on this connection.
    answered_before: bool,
    /// A request is being written, and nothing has been read since.
    sending: bool,
    /// When bytes last came in.
    heard_at: Option<Instant>,
}

/// A connection that answered this recently is taken to be open without a probe. ureq probes a
/// pooled connection when it goes back to the pool and when it is taken out (a non-blocking
/// read between two mode switches: six system calls per request, a tenth of a small image's
/// cost). A server that closed it meanwhile all the same costs one request sent again
/// ([`Sent::met_a_stale_connection`]); servers keep idle connections open for seconds.
const ANSWERED_RECENTLY: Duration = Duration::from_millis(250);

impl<T: Transport> Transport for Tracked<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if !self.sending {
            self.sending = true;
            LAST_REQUEST.set(Sent {
                reused: self.answered_before,
                answered: false,
            });
        }
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let progress = self.inner.await_input(timeout);
        if matches!(progress, Ok(true)) {
            self.answered_before = true;
            self.heard_at = Some(Instant::now());
            self.sending = false;
            LAST_REQUEST.set(Sent {
                answered: true,
                ..LAST_REQUEST.get()
            });
        }
        progress
    }

    fn is_open(&mut self) -> bool {
        let recently = self
            .heard_at
            .is_some_and(|t| t.elapsed() < ANSWERED_RECENTLY);
        recently || self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}
