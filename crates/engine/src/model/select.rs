//! PLACEHOLDER: being written; replaced before landing.
use crate::reactor::{Event, Interest, Selector};
use crate::server::Wake;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct Select;

impl Selector for Select {
    const NAME: &'static str = "select";
    const EDGE_TRIGGERED: bool = false;
    fn new() -> io::Result<Self> { Err(io::Error::other("not written yet")) }
    fn waker(&self) -> Arc<dyn Wake> { unimplemented!() }
    fn register(&mut self, _: RawFd, _: usize, _: Interest) -> io::Result<()> { unimplemented!() }
    fn reregister(&mut self, _: RawFd, _: usize, _: Interest) -> io::Result<()> { unimplemented!() }
    fn deregister(&mut self, _: RawFd, _: usize) -> io::Result<()> { unimplemented!() }
    fn select(&mut self, _: &mut Vec<Event>, _: Option<Duration>) -> io::Result<()> { unimplemented!() }
}
