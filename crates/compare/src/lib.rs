//! iomodels compare (being written).
