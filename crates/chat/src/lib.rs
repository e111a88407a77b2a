//! iomodels chat (being written).
