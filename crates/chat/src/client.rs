//! A blocking connection to a chat server: what the bots, the interactive client and the
//! tests speak through.

use iomodels_proto::{decode_responses, ProtocolError, Request, Response};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting, reading or writing failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
    /// The server sent something that is not the protocol.
    #[error("the server broke the protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// Nothing arrived in time.
    #[error("no packet within {0:?}")]
    Timeout(Duration),
}

fn io_error(context: &'static str) -> impl FnOnce(io::Error) -> ClientError {
    move |source| ClientError::Io { context, source }
}

/// A client's connection: encodes requests, decodes responses and notifies.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    input: Vec<u8>,
    scratch: Box<[u8]>,
    ready: VecDeque<Response>,
    out: Vec<u8>,
    closed: bool,
}

/// Bytes read per `read` call.
const READ_SIZE: usize = 32 * 1024;

impl Connection {
    /// Connect to `addr` (with `TCP_NODELAY`: packets are small and latency matters).
    pub fn connect(addr: SocketAddr) -> Result<Connection, ClientError> {
        let stream = TcpStream::connect(addr).map_err(io_error("connecting"))?;
        stream
            .set_nodelay(true)
            .map_err(io_error("setting TCP_NODELAY"))?;
        Ok(Connection {
            stream,
            input: Vec::with_capacity(16 * 1024),
            scratch: vec![0; READ_SIZE].into_boxed_slice(),
            ready: VecDeque::new(),
            out: Vec::with_capacity(512),
            closed: false,
        })
    }

    /// The socket, for raw writes (tests) or a shutdown.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Send one request.
    pub fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        self.out.clear();
        request.encode(&mut self.out);
        self.stream
            .write_all(&self.out)
            .map_err(io_error("sending"))
    }

    /// Send raw bytes (for tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes).map_err(io_error("sending"))
    }

    /// The next packet, waiting at most `timeout` (`None`: wait for ever). `Ok(None)` when
    /// the time ran out.
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<Option<Response>, ClientError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(response) = self.ready.pop_front() {
                return Ok(Some(response));
            }
            if self.closed {
                return Err(ClientError::Closed);
            }
            let wait = match deadline {
                None => None,
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(left)
                }
            };
            self.stream
                .set_read_timeout(wait)
                .map_err(io_error("setting the read timeout"))?;
            let n = match self.stream.read(&mut self.scratch) {
                Ok(n) => n,
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => continue,
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                        self.closed = true;
                        continue;
                    }
                    _ => {
                        return Err(ClientError::Io {
                            context: "receiving",
                            source: e,
                        })
                    }
                },
            };
            if n == 0 {
                self.closed = true;
                if !self.input.is_empty() {
                    return Err(ClientError::Closed);
                }
                continue;
            }
            self.input.extend_from_slice(&self.scratch[..n]);
            let ready = &mut self.ready;
            let decoded = decode_responses(&self.input, |r| ready.push_back(r));
            if let Some(error) = decoded.error {
                return Err(ClientError::Protocol(error));
            }
            self.input.drain(..decoded.consumed);
        }
    }

    /// The next packet, waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Result<Response, ClientError> {
        self.poll(Some(timeout))?
            .ok_or(ClientError::Timeout(timeout))
    }

    /// Wait until the server closes the connection, dropping whatever arrives first.
    /// Returns how many packets were dropped.
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<usize, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut dropped = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.poll(Some(left)) {
                Ok(Some(_)) => dropped += 1,
                Ok(None) => return Err(ClientError::Timeout(timeout)),
                Err(ClientError::Closed) => return Ok(dropped),
                Err(ClientError::Protocol(_)) => {
                    // A half-received packet cut by the close; keep draining.
                    self.input.clear();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Close the sending side (FIN) and keep reading.
    pub fn shutdown_write(&self) -> Result<(), ClientError> {
        self.stream
            .shutdown(Shutdown::Write)
            .map_err(io_error("shutting down"))
    }
}

impl Connection {
    /// A second handle on the same socket, with its own buffers: one thread reads while
    /// another sends.
    pub fn try_clone(&self) -> Result<Connection, ClientError> {
        Ok(Connection {
            stream: self
                .stream
                .try_clone()
                .map_err(io_error("cloning the socket"))?,
            input: Vec::with_capacity(16 * 1024),
            scratch: vec![0; READ_SIZE].into_boxed_slice(),
            ready: VecDeque::new(),
            out: Vec::with_capacity(512),
            closed: false,
        })
    }
}

const HELP: &str = "commands: /login USER [PASSWORD], /join ROOM, /leave, /quit; anything else is said to your room";

/// How a packet reads to a person.
fn describe(response: &Response) -> String {
    use iomodels_proto::ResultCode;
    let result = |code: i64| match u16::try_from(code).ok().and_then(ResultCode::from_code) {
        Some(ResultCode::None) => "ok".to_owned(),
        Some(code) => format!("failed: {code}"),
        None => format!("failed: unknown code {code}"),
    };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    match response {
        Response::Login { result: r } => format!("login {}", result(i64::from(*r))),
        Response::RoomEnter { result: r } => format!("join {}", result(i64::from(*r))),
        Response::RoomLeave { result: r } => format!("leave {}", result(i64::from(*r))),
        Response::RoomChat { result: r } if *r != 0 => format!("say {}", result(i64::from(*r))),
        Response::RoomChat { .. } => String::new(),
        Response::RoomNewUser(user) => {
            format!("* {} (#{}) joined", text(&user.user_id), user.unique_id)
        }
        Response::RoomUserList(users) if users.is_empty() => "* you are alone in the room".into(),
        Response::RoomUserList(users) => format!(
            "* in the room: {}",
            users
                .iter()
                .map(|u| format!("{} (#{})", text(&u.user_id), u.unique_id))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Response::RoomLeaveUser { unique_id } => format!("* #{unique_id} left"),
        Response::RoomChatNotify { user_id, message } => {
            format!("<{}> {}", text(user_id), text(message))
        }
    }
}

/// The interactive client: commands from standard input, packets printed as they arrive.
pub(crate) fn interactive(addr: SocketAddr) -> Result<(), crate::Error> {
    use std::io::BufRead;
    let mut connection = Connection::connect(addr)?;
    let mut reader = connection.try_clone()?;
    println!("connected to {addr}; {HELP}");
    let printer = std::thread::spawn(move || loop {
        match reader.poll(None) {
            Ok(Some(response)) => {
                let line = describe(&response);
                if !line.is_empty() {
                    println!("{line}");
                }
            }
            Ok(None) => {}
            Err(ClientError::Closed) => {
                println!("the server closed the connection");
                return;
            }
            Err(e) => {
                println!("{e}");
                return;
            }
        }
    });
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(crate::Error::io("reading standard input"))?;
        let line = line.trim();
        let mut words = line.split_whitespace();
        let request = match words.next() {
            None => continue,
            Some("/quit") => break,
            Some("/login") => match words.next() {
                Some(user) => Request::Login {
                    user_id: user.as_bytes().to_vec(),
                    password: words.next().unwrap_or("").as_bytes().to_vec(),
                },
                None => {
                    println!("usage: /login USER [PASSWORD]");
                    continue;
                }
            },
            Some("/join") => match words.next().and_then(|r| r.parse().ok()) {
                Some(room) => Request::RoomEnter { room },
                None => {
                    println!("usage: /join ROOM");
                    continue;
                }
            },
            Some("/leave") => Request::RoomLeave,
            Some(command) if command.starts_with('/') => {
                println!("{HELP}");
                continue;
            }
            Some(_) => Request::RoomChat {
                message: line.as_bytes().to_vec(),
            },
        };
        if printer.is_finished() {
            break;
        }
        connection.send(&request)?;
    }
    let _ = connection.stream().shutdown(Shutdown::Both);
    let _ = printer.join();
    Ok(())
}
