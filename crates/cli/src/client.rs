//! `iomodels client`: an echo client for people (stdin lines) and scripts (`--count`).

use crate::flags;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};

/// Flags of `iomodels client`.
#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// The echo server.
    #[arg(long, default_value = "127.0.0.1:7000", value_parser = flags::addr)]
    addr: SocketAddr,
    /// Send this text instead of reading stdin.
    #[arg(long)]
    message: Option<String>,
    /// With --message: how many times to send it (each echo is checked).
    #[arg(long, default_value_t = 1)]
    count: u64,
}

/// Run the client: scripted with `--message`, else interactive.
pub fn run(args: ClientArgs) -> Result<()> {
    let mut stream =
        TcpStream::connect(args.addr).with_context(|| format!("connecting to {}", args.addr))?;
    stream.set_nodelay(true)?;
    match args.message {
        Some(message) => scripted(&mut stream, message.as_bytes(), args.count),
        None => interactive(&mut stream),
    }
}

fn scripted(stream: &mut TcpStream, message: &[u8], count: u64) -> Result<()> {
    let mut echo = vec![0; message.len()];
    let start = std::time::Instant::now();
    for i in 0..count {
        stream.write_all(message)?;
        stream
            .read_exact(&mut echo)
            .with_context(|| format!("reading echo {}", i + 1))?;
        if echo != message {
            bail!("echo {} differs from what was sent", i + 1);
        }
    }
    let elapsed = start.elapsed();
    println!(
        "{count} echoes of {} bytes verified in {:.3} s ({:.1} us per round trip)",
        message.len(),
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / count.max(1) as f64
    );
    Ok(())
}

fn interactive(stream: &mut TcpStream) -> Result<()> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let mut line = line?;
        line.push('\n');
        stream.write_all(line.as_bytes())?;
        let mut echo = vec![0; line.len()];
        stream
            .read_exact(&mut echo)
            .context("the server closed the connection")?;
        stdout.write_all(&echo)?;
        stdout.flush()?;
    }
    Ok(())
}
