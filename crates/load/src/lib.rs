//! iomodels load (being written).
