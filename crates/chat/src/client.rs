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
    #[error("{context}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
    /// The server sent something that is not the protocol.
    #[error("the server broke the protocol")]
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
        Connection::from_stream(stream)
    }

    /// A connection over a stream connected elsewhere (from a chosen source address, say),
    /// with `TCP_NODELAY` set.
    pub fn from_stream(stream: TcpStream) -> Result<Connection, ClientError> {
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

/// What a line typed into the interactive client asks for.
#[derive(Debug, PartialEq)]
enum Command {
    /// Send this request.
    Send(Request),
    /// Leave the client.
    Quit,
    /// Nothing to send (an empty line).
    Nothing,
}

/// Read one line typed into the interactive client. `Err` says why it cannot be sent:
/// a user id, password or message too long for its field is refused, never cut (a cut
/// would log in as someone else or split a UTF-8 character).
fn parse_command(line: &str) -> Result<Command, String> {
    use iomodels_proto::{MAX_MESSAGE_LEN, MAX_PASSWORD_LEN, MAX_USER_ID_LEN};
    let fits = |what: &str, text: &str, max: usize| {
        if text.len() > max {
            Err(format!(
                "{what} is {} bytes; the protocol allows at most {max}",
                text.len()
            ))
        } else {
            Ok(text.as_bytes().to_vec())
        }
    };
    let line = line.trim();
    let mut words = line.split_whitespace();
    let request = match words.next() {
        None => return Ok(Command::Nothing),
        Some("/quit") => return Ok(Command::Quit),
        Some("/login") => match words.next() {
            Some(user) => Request::Login {
                user_id: fits("the user id", user, MAX_USER_ID_LEN)?,
                password: fits("the password", words.next().unwrap_or(""), MAX_PASSWORD_LEN)?,
            },
            None => return Err("usage: /login USER [PASSWORD]".into()),
        },
        Some("/join") => match words.next().and_then(|r| r.parse().ok()) {
            Some(room) => Request::RoomEnter { room },
            None => return Err("usage: /join ROOM".into()),
        },
        Some("/leave") => Request::RoomLeave,
        Some(command) if command.starts_with('/') => return Err(HELP.into()),
        Some(_) => Request::RoomChat {
            message: fits("the message", line, MAX_MESSAGE_LEN)?,
        },
    };
    Ok(Command::Send(request))
}

/// An error and its causes on one line, each once.
fn one_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        line += &format!(": {e}");
        cause = e.source();
    }
    line
}

/// The interactive client: commands from standard input, packets printed on standard
/// output as they arrive; the greeting and refused commands go to standard error.
pub fn interactive(addr: SocketAddr) -> Result<(), crate::Error> {
    use std::io::BufRead;
    let mut connection = Connection::connect(addr)?;
    let mut reader = connection.try_clone()?;
    eprintln!("connected to {addr}; {HELP}");
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
                eprintln!("the server closed the connection");
                return;
            }
            Err(e) => {
                eprintln!("{}", one_line(&e));
                return;
            }
        }
    });
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(crate::Error::io("reading standard input"))?;
        let request = match parse_command(&line) {
            Ok(Command::Send(request)) => request,
            Ok(Command::Nothing) => continue,
            Ok(Command::Quit) => break,
            Err(refusal) => {
                eprintln!("{refusal}");
                continue;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_long_fields_are_refused_not_cut() {
        let id32 = "u".repeat(32);
        assert_eq!(
            parse_command(&format!("/login {id32} pw")),
            Ok(Command::Send(Request::Login {
                user_id: id32.clone().into_bytes(),
                password: b"pw".to_vec(),
            }))
        );
        let refusal = parse_command(&format!("/login {id32}x")).unwrap_err();
        assert!(refusal.contains("user id is 33 bytes"), "{refusal}");
        let refusal = parse_command(&format!("/login me {}", "p".repeat(33))).unwrap_err();
        assert!(refusal.contains("password is 33 bytes"), "{refusal}");

        let message = "m".repeat(256);
        assert!(matches!(parse_command(&message), Ok(Command::Send(_))));
        let refusal = parse_command(&format!("{message}m")).unwrap_err();
        assert!(refusal.contains("message is 257 bytes"), "{refusal}");
        // 255 ASCII bytes and a 2-byte character: 257 bytes, refused, not split.
        let refusal = parse_command(&format!("{}é", "m".repeat(255))).unwrap_err();
        assert!(refusal.contains("257 bytes"), "{refusal}");
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse_command("  "), Ok(Command::Nothing));
        assert_eq!(parse_command("/quit"), Ok(Command::Quit));
        assert_eq!(
            parse_command("/join 3"),
            Ok(Command::Send(Request::RoomEnter { room: 3 }))
        );
        assert!(parse_command("/join x").is_err());
        assert!(parse_command("/nope").is_err());
    }
}
