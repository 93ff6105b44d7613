//! Backend selection: the fixed Call-ID hash and the Maglev table.
