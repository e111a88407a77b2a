//! # Framed messages: decode whole frames in place, reply with a header and a body
//!
//! TCP delivers a byte stream, not messages: one `read` may hold half a frame, or three and
//! a half. This example is a request/response server over the chat protocol's framing (a
//! 5-byte little-endian header, `length: u16` of the whole frame, `id: u16`, `flags: u8`;
//! see `iomodels_proto::frame`) and shows the three things every framed server does:
//!
//! 1. **Decode in place.** [`Handler::data`] is given every byte received and not yet
//!    consumed. The handler cuts whole frames off the front, borrowing them from the
//!    engine's buffer, and returns how many bytes it used. A partial frame is simply not
//!    consumed: the engine keeps it and passes it again, with what arrives next. No copy,
//!    no per-session reassembly buffer.
//! 2. **Reject bad input early.** A frame with an unknown id or a length above our limit is
//!    refused as soon as its 5-byte header is in (its body is never waited for), with
//!    [`Session::reject`]: the connection is dropped at once and counted as
//!    [`CloseReason::ProtocolError`].
//! 3. **Reply without assembling.** [`Session::send_vectored`] queues a header and a body
//!    as one message: here the body is borrowed straight from the request.
//!
//! The protocol: request `ECHO` (id 1) with a body of up to 1 KiB; the reply is
//! `ECHO_REPLY` (id 2) with the same body.
//!
//! ```sh
//! cargo run -p iomodels-engine --example framed -- --model uring 127.0.0.1:7000
//! cargo run -p iomodels-engine --example framed -- --self-test --model select
//! ```
//!
//! Options: `--model NAME` (blocking, polling, select, poll, signal, epoll, uring; epoll by
//! default), `--seconds N` (stop gracefully after N seconds), `--self-test` (start on a
//! free port, check the behaviour with real sockets, stop; exit 0 if it passed, 77 if the
//! kernel cannot run the model), and the address (`127.0.0.1:0` by default: a free port,
//! printed on standard error).

mod common;

use common::{Args, Outcome};
use iomodels_engine::{CloseReason, Config, Handler, Server, Session};
use iomodels_proto::{split_frame, Header, Judge, ProtocolError, HEADER_SIZE};
use std::io::{Read, Write};

const EXAMPLE: &str = "framed";

/// Request: send the body back.
const ECHO: u16 = 1;
/// Reply to [`ECHO`]: the same body.
const ECHO_REPLY: u16 = 2;
/// The largest frame we accept, header included.
const MAX_FRAME: usize = HEADER_SIZE + 1024;

/// Decides, from the header alone, whether a frame may follow: the framing layer calls it
/// as soon as 5 bytes are in, so an oversized frame is refused before its body arrives
/// and never fills our input buffer.
struct Requests;

impl Judge for Requests {
    fn judge(&self, header: Header) -> Result<(), ProtocolError> {
        if header.id != ECHO {
            return Err(ProtocolError::UnknownId { id: header.id });
        }
        if usize::from(header.length) > MAX_FRAME {
            return Err(ProtocolError::LengthTooLong {
                length: header.length,
                max: MAX_FRAME,
            });
        }
        Ok(())
    }
}

/// The server's logic. One value serves every session on every I/O thread.
struct Framed;

/// What we keep per session: the engine stores it beside the socket and lends it to each
/// callback by `&mut`, so it needs no lock.
#[derive(Default)]
struct Stats {
    frames: u64,
}

impl Handler for Framed {
    type State = Stats;

    fn opened(&self, _session: &Session) -> Stats {
        Stats::default()
    }

    fn data(&self, stats: &mut Stats, session: &Session, data: &[u8]) -> usize {
        // After a reject the engine may still hand us bytes it had already read: the
        // session is going away, so take them all and look no further.
        if session.is_closed() {
            return data.len();
        }
        let mut consumed = 0;
        loop {
            match split_frame(&data[consumed..], &Requests) {
                // A whole frame at the front: `frame.body` borrows from `data`.
                Ok(Some(frame)) => {
                    let header = Header::for_body(ECHO_REPLY, frame.body.len()).encode();
                    // Header and body go out as one message, contiguous on the wire even
                    // if another thread sends to this session at the same moment.
                    if session.send_vectored(&[&header, frame.body]).is_err() {
                        // The session is closing (or its send queue overflowed and the
                        // engine is closing it): nothing more to answer.
                        return data.len();
                    }
                    stats.frames += 1;
                    consumed += frame.len();
                }
                // Nothing, or a partial frame: leave it where it is. The engine passes
                // these bytes again, with whatever arrives next.
                Ok(None) => return consumed,
                // A bad header: drop the connection now; what it queued is discarded.
                Err(error) => {
                    eprintln!("{EXAMPLE}: {} sent a bad frame: {error}", session.peer());
                    session.reject();
                    return data.len();
                }
            }
        }
    }

    fn closed(&self, stats: Stats, session: &Session, reason: CloseReason) {
        eprintln!(
            "{EXAMPLE}: session {} from {} ended ({reason}) after {} frames",
            session.id(),
            session.peer(),
            stats.frames
        );
    }
}

fn main() {
    let args = Args::parse(EXAMPLE);
    let config = Config::new(args.model, args.addr);
    let server = common::start(EXAMPLE, config, Framed);
    if args.self_test {
        common::exit_with(EXAMPLE, self_test(server));
    }
    common::serve(EXAMPLE, server, &args)
}

/// A whole frame, as a client writes it.
fn frame(id: u16, body: &[u8]) -> Vec<u8> {
    let mut wire = Header::for_body(id, body.len()).encode().to_vec();
    wire.extend_from_slice(body);
    wire
}

/// Read one frame and check it is the echo reply carrying `body`, byte for byte.
fn expect_reply(stream: &mut impl Read, body: &[u8]) -> Outcome {
    let mut got = vec![0; HEADER_SIZE + body.len()];
    stream.read_exact(&mut got)?;
    if got != frame(ECHO_REPLY, body) {
        return Err(format!("expected the echo of {} bytes, got {got:?}", body.len()).into());
    }
    Ok(())
}

/// Start to finish with real sockets: pipelined frames, frames cut anywhere, bad frames.
fn self_test(server: Server<Framed>) -> Outcome {
    let addr = server.local_addr();
    let handle = server.handle();

    // 1. Fifty frames of 0 to 1024 bytes in one write: fifty replies, in order.
    let mut client = common::connect(addr)?;
    let bodies: Vec<Vec<u8>> = (0..50u32)
        .map(|i| {
            let len = (i as usize * 211) % 1025;
            (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
        })
        .collect();
    let wire: Vec<u8> = bodies.iter().flat_map(|body| frame(ECHO, body)).collect();
    client.write_all(&wire)?;
    for body in &bodies {
        expect_reply(&mut client, body)?;
    }

    // 2. A frame cut inside its header, then one cut inside its body. The second part is
    //    written only after the reply to the frame before it came back, so the server has
    //    certainly seen the partial frame and left it in its buffer.
    for cut in [3, HEADER_SIZE + 4] {
        let first = frame(ECHO, b"a whole frame");
        let second = frame(ECHO, b"a frame that arrives in two pieces");
        client.write_all(&[&first[..], &second[..cut]].concat())?;
        expect_reply(&mut client, b"a whole frame")?;
        client.write_all(&second[cut..])?;
        expect_reply(&mut client, b"a frame that arrives in two pieces")?;
    }

    // 3. Bad frames end their connection with no reply: an unknown id, and a header that
    //    announces more than MAX_FRAME (refused on the header alone; no body follows).
    let mut unknown = common::connect(addr)?;
    unknown.write_all(&frame(99, b"what is this?"))?;
    common::expect_end(&mut unknown, "a frame with an unknown id")?;
    let mut oversized = common::connect(addr)?;
    let header = Header {
        length: (MAX_FRAME + 1) as u16,
        id: ECHO,
        flags: 0,
    };
    oversized.write_all(&header.encode())?;
    common::expect_end(&mut oversized, "an oversized frame")?;

    // 4. The good connection never noticed.
    client.write_all(&frame(ECHO, b"still here"))?;
    expect_reply(&mut client, b"still here")?;
    drop(client);

    server.stop()?;
    let stats = handle.stats();
    if stats.closed_for(CloseReason::ProtocolError) != 2 || stats.messages_out != 50 + 4 + 1 {
        return Err(format!("unexpected counters: {stats:?}").into());
    }
    Ok(())
}
