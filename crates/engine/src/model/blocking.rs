//! PLACEHOLDER: being written; replaced before landing.
use crate::error::Error;
use crate::handler::Handler;
use crate::server::Core;
use std::sync::Arc;

pub(crate) fn start<H: Handler>(_core: &Arc<Core<H>>) -> Result<super::Started, Error> {
    Err(Error::Unsupported { model: "blocking", what: "not written yet".into() })
}
