//! JSON as Fluentd reads and writes it: `decode` parses into `Value`s (byte strings, invalid
//! UTF-8 kept, duplicate keys keep the first position, big integers kept); `encode` writes what
//! Ruby's JSON generator writes (compact, non-ASCII raw, Ruby float printing).

pub mod decode;
pub mod encode;
