//! The commands of each operation of the RESP workloads, shared by the
//! single-server driver and the cluster driver.

use std::sync::Arc;

use super::{RespConfig, wire};
use crate::workloads::Action;
use crate::workloads::values::Codec;

/// The second round of a cache read that missed: fill the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Main,
    Fill,
}

/// Turns operations into RESP commands, reusing its buffers.
#[derive(Clone)]
pub(crate) struct Encoder {
    config: Arc<RespConfig>,
    key: Vec<u8>,
    scratch: Vec<u8>,
    /// `codec_in_path`: this connection's codec.
    codec: Option<Codec>,
    /// The time the last `commands` spent encoding its value, or why it
    /// could not.
    encoded: Option<Result<u32, String>>,
}

impl Encoder {
    pub(crate) fn new(config: &Arc<RespConfig>) -> Self {
        Self {
            config: Arc::clone(config),
            key: Vec::with_capacity(64),
            scratch: Vec::with_capacity(64),
            codec: config.codec.clone(),
            encoded: None,
        }
    }

    /// The codec that decodes values read (`codec_in_path`).
    pub(crate) fn codec(&mut self) -> Option<&mut Codec> {
        self.codec.as_mut()
    }

    /// What encoding the value of the last `commands` took: its time in
    /// nanoseconds, or the error that left the operation without commands.
    pub(crate) fn take_encoded(&mut self) -> Option<Result<u32, String>> {
        self.encoded.take()
    }

    /// Sets the key buffer to prefix + `tag` + number.
    fn set_key(&mut self, tag: &[u8], n: u64) {
        self.key.clear();
        self.key.extend_from_slice(self.config.prefix.as_bytes());
        self.key.extend_from_slice(tag);
        wire::push_decimal(&mut self.key, n);
    }

    fn value(&self, n: u64) -> &[u8] {
        let values = &self.config.values;
        values.get((n % values.len().max(1) as u64) as usize).map_or(&[], |v| &v[..])
    }

    /// Emits the commands of one operation; returns how many.
    pub(crate) fn commands(&mut self, action: Action, phase: Phase, emit: &mut dyn FnMut(&[&[u8]])) -> u8 {
        match (action, phase) {
            (Action::Get(k), _) | (Action::CacheRead(k), Phase::Main) => {
                self.set_key(b"", k);
                emit(&[b"GET", &self.key]);
                1
            }
            (Action::Set(k), _) if self.codec.is_some() => {
                self.set_key(b"", k);
                let Some(codec) = self.codec.as_mut() else { return 0 };
                let start = std::time::Instant::now();
                match codec.encode(k) {
                    Ok(value) => {
                        let ns = start.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32;
                        emit(&[b"SET", &self.key, value]);
                        self.encoded = Some(Ok(ns));
                        1
                    }
                    Err(error) => {
                        self.encoded = Some(Err(error.to_string()));
                        0
                    }
                }
            }
            (Action::Set(k), _) | (Action::CacheRead(k), Phase::Fill) => {
                self.set_key(b"", k);
                if self.config.ttl_ms > 0 {
                    self.scratch.clear();
                    wire::push_decimal(&mut self.scratch, self.config.ttl_ms);
                    emit(&[b"SET", &self.key, self.value(k), b"PX", &self.scratch]);
                } else {
                    emit(&[b"SET", &self.key, self.value(k)]);
                }
                1
            }
            (Action::Incr(k), _) => {
                self.set_key(b"n:", k);
                emit(&[b"INCR", &self.key]);
                1
            }
            (Action::LPush(k), _) => {
                self.set_key(b"l:", k);
                emit(&[b"LPUSH", &self.key, self.value(k)]);
                1
            }
            (Action::HSet(k), _) => {
                self.set_key(b"h:", k);
                self.scratch.clear();
                self.scratch.push(b'f');
                wire::push_decimal(&mut self.scratch, k % 16);
                emit(&[b"HSET", &self.key, &self.scratch, self.value(k)]);
                1
            }
            (Action::ChatPost(room), _) => {
                self.set_key(b"", room);
                emit(&[b"LPUSH", &self.key, self.value(room)]);
                self.scratch.clear();
                wire::push_decimal(&mut self.scratch, u64::from(self.config.history.saturating_sub(1)));
                emit(&[b"LTRIM", &self.key, b"0", &self.scratch]);
                2
            }
            (Action::ChatHistory(room), _) => {
                self.set_key(b"", room);
                self.scratch.clear();
                wire::push_decimal(&mut self.scratch, u64::from(self.config.page.saturating_sub(1)));
                emit(&[b"LRANGE", &self.key, b"0", &self.scratch]);
                1
            }
            (Action::Publish(channel), _) => {
                self.set_key(b"", channel);
                let payload = self.config.clock.message_from(&self.config.values, channel);
                emit(&[b"PUBLISH", &self.key, &payload]);
                1
            }
            (Action::Delete(k), _) => {
                let mut keys: Vec<Vec<u8>> = Vec::with_capacity(4);
                for tag in [&b""[..], b"n:", b"l:", b"h:"] {
                    self.set_key(tag, k);
                    keys.push(self.key.clone());
                }
                let mut args: Vec<&[u8]> = vec![b"DEL"];
                args.extend(keys.iter().map(Vec::as_slice));
                emit(&args);
                1
            }
            (Action::Insert(_) | Action::Query(..) | Action::Cycle | Action::Request(_) | Action::Echo, _) => 0,
        }
    }
}
