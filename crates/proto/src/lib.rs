//! iomodels proto (being written).
