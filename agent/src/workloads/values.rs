//! The values a workload writes, in the formats of the seed's
//! serialization comparison: raw bytes, or one record as JSON, protobuf,
//! bitcode, MessagePack, an rkyv archive or a FlatBuffers table, each
//! optionally zstd-compressed.
//!
//! By default a small pool of distinct values is encoded once before the
//! run, so that encoding never shows up in measured latency; the report
//! notes the encoded size. With `codec_in_path` a [`Codec`] encodes each
//! value as it is sent and decodes each value read, and the driver times
//! both, so that the formats' cost is measured where an application pays
//! it.

use bytes::Bytes;
use flatbuffers::{
    FlatBufferBuilder, ForwardsUOffset, InvalidFlatbuffer, Vector, Verifiable, Verifier, VerifierOptions,
};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use stampede_common::scenario::{Compression, ValueFormat, ValueSpec};

/// Distinct values per agent; operations pick one by key.
pub const POOL: usize = 16;

/// The record behind every format but `raw`.
#[derive(
    Clone,
    PartialEq,
    serde::Serialize,
    serde::Deserialize,
    prost::Message,
    bitcode::Encode,
    bitcode::Decode,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct Record {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub user: String,
    #[prost(int64, tag = "3")]
    pub created_at_ms: i64,
    #[prost(string, repeated, tag = "4")]
    pub tags: Vec<String>,
    #[prost(string, tag = "5")]
    pub body: String,
}

fn record(rng: &mut SmallRng, id: u64, body_size: usize) -> Record {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let body = (0..body_size).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    Record {
        id,
        user: format!("user-{}", rng.random_range(0..100_000)),
        created_at_ms: 1_700_000_000_000 + rng.random_range(0..86_400_000),
        tags: vec!["bench".into(), format!("t{}", rng.random_range(0..16))],
        body,
    }
}

/// A value that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error("cannot encode a value as {format}: {message}")]
    Encode { format: &'static str, message: String },
    #[error("the value read is not a {format} record: {message}")]
    Decode { format: &'static str, message: String },
    #[error("cannot compress a value with zstd: {0}")]
    Zstd(#[from] std::io::Error),
}

fn encode_error(format: ValueFormat, error: impl std::fmt::Display) -> ValueError {
    ValueError::Encode { format: format.as_str(), message: error.to_string() }
}

fn decode_error(format: ValueFormat, error: impl std::fmt::Display) -> ValueError {
    ValueError::Decode { format: format.as_str(), message: error.to_string() }
}

// FlatBuffers without a schema compiler: the table's fields by their
// vtable slots, written with the crate's builder and checked by its
// verifier; `flat_fields` reads the two fields a reader uses in place.
const FB_ID: u16 = 4;
const FB_USER: u16 = 6;
const FB_CREATED: u16 = 8;
const FB_TAGS: u16 = 10;
const FB_BODY: u16 = 12;

/// The record's FlatBuffers table, as the verifier sees it.
struct FlatRecord;

impl Verifiable for FlatRecord {
    fn run_verifier(v: &mut Verifier<'_, '_>, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<u64>("id", FB_ID, false)?
            .visit_field::<ForwardsUOffset<&str>>("user", FB_USER, false)?
            .visit_field::<i64>("created_at_ms", FB_CREATED, false)?
            .visit_field::<ForwardsUOffset<Vector<'_, ForwardsUOffset<&str>>>>("tags", FB_TAGS, false)?
            .visit_field::<ForwardsUOffset<&str>>("body", FB_BODY, false)?
            .finish();
        Ok(())
    }
}

fn flat_write<'b>(builder: &'b mut FlatBufferBuilder<'static>, r: &Record) -> &'b [u8] {
    builder.reset();
    let user = builder.create_string(&r.user);
    let tags: [_; 2] = std::array::from_fn(|i| builder.create_string(r.tags.get(i).map_or("", String::as_str)));
    let tags = builder.create_vector(&tags[..r.tags.len().min(2)]);
    let body = builder.create_string(&r.body);
    let table = builder.start_table();
    builder.push_slot::<u64>(FB_ID, r.id, 0);
    builder.push_slot_always(FB_USER, user);
    builder.push_slot::<i64>(FB_CREATED, r.created_at_ms, 0);
    builder.push_slot_always(FB_TAGS, tags);
    builder.push_slot_always(FB_BODY, body);
    let root = builder.end_table(table);
    builder.finish_minimal(root);
    builder.finished_data()
}

fn le<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The id and the body of a verified FlatBuffers record, read in place.
fn flat_fields(b: &[u8]) -> Option<(u64, &str)> {
    let table = u32::from_le_bytes(le(b, 0)?) as usize;
    let vtable = table.checked_add_signed(-(i32::from_le_bytes(le(b, table)?) as isize))?;
    let vtable_len = usize::from(u16::from_le_bytes(le(b, vtable)?));
    let field = |slot: u16| {
        let slot = usize::from(slot);
        if slot + 2 > vtable_len {
            return None;
        }
        let offset = usize::from(u16::from_le_bytes(le(b, vtable + slot)?));
        (offset != 0).then_some(table + offset)
    };
    let id = match field(FB_ID) {
        Some(at) => u64::from_le_bytes(le(b, at)?),
        None => 0,
    };
    let at = field(FB_BODY)?;
    let string = at + u32::from_le_bytes(le(b, at)?) as usize;
    let len = u32::from_le_bytes(le(b, string)?) as usize;
    let body = std::str::from_utf8(b.get(string + 4..string + 4 + len)?).ok()?;
    Some((id, body))
}

/// Encodes values of one format, reusing its buffers; used once per value
/// for the pool, or for every write with `codec_in_path`.
pub struct Codec {
    spec: ValueSpec,
    seed: u64,
    records: Vec<Record>,
    raw: Vec<Vec<u8>>,
    plain: Vec<u8>,
    bitcode: bitcode::Buffer,
    flat: FlatBufferBuilder<'static>,
    aligned: rkyv::util::AlignedVec,
    packed: Vec<u8>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl Clone for Codec {
    /// The same values with buffers of its own (one per pipeline slot).
    fn clone(&self) -> Self {
        Self::new(&self.spec, self.seed)
    }
}

/// What a decoded value held, so that decoding cannot be skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    pub id: u64,
    pub body_len: usize,
}

impl Codec {
    /// A codec whose [`POOL`] records (or random byte strings, for `raw`)
    /// come from `seed`: `size` is the raw size or the record's text body.
    pub fn new(spec: &ValueSpec, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let size = spec.size as usize;
        let (records, raw) = match spec.format {
            ValueFormat::Raw => {
                let raw = (0..POOL)
                    .map(|_| {
                        let mut bytes = vec![0u8; size];
                        rng.fill_bytes(&mut bytes);
                        bytes
                    })
                    .collect();
                (Vec::new(), raw)
            }
            _ => ((0..POOL as u64).map(|id| record(&mut rng, id, size)).collect(), Vec::new()),
        };
        Self {
            spec: *spec,
            seed,
            records,
            raw,
            plain: Vec::with_capacity(size + 128),
            bitcode: bitcode::Buffer::new(),
            flat: FlatBufferBuilder::with_capacity(size + 128),
            aligned: rkyv::util::AlignedVec::with_capacity(size + 128),
            packed: Vec::new(),
            compressor: None,
            decompressor: None,
        }
    }

    pub fn spec(&self) -> &ValueSpec {
        &self.spec
    }

    /// Encodes the value for `n` (pool entry `n % POOL`, with id `n`).
    pub fn encode(&mut self, n: u64) -> Result<&[u8], ValueError> {
        let format = self.spec.format;
        let slot = (n % POOL as u64) as usize;
        let plain: &[u8] = match format {
            ValueFormat::Raw => {
                self.plain.clear();
                self.plain.extend_from_slice(&self.raw[slot]);
                &self.plain
            }
            _ => {
                let record = &mut self.records[slot];
                record.id = n;
                let record = &*record;
                match format {
                    ValueFormat::Raw => unreachable!("handled above"),
                    ValueFormat::Json => {
                        self.plain.clear();
                        serde_json::to_writer(&mut self.plain, record).map_err(|e| encode_error(format, e))?;
                        &self.plain
                    }
                    ValueFormat::Protobuf => {
                        self.plain.clear();
                        prost::Message::encode(record, &mut self.plain).map_err(|e| encode_error(format, e))?;
                        &self.plain
                    }
                    ValueFormat::Msgpack => {
                        self.plain.clear();
                        rmp_serde::encode::write_named(&mut self.plain, record).map_err(|e| encode_error(format, e))?;
                        &self.plain
                    }
                    ValueFormat::Bitcode => self.bitcode.encode(record),
                    ValueFormat::Rkyv => {
                        let mut buffer = std::mem::take(&mut self.aligned);
                        buffer.clear();
                        self.aligned = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(record, buffer)
                            .map_err(|e| encode_error(format, e))?;
                        &self.aligned
                    }
                    ValueFormat::Flatbuffers => flat_write(&mut self.flat, record),
                }
            }
        };
        if self.spec.compress == Compression::None {
            return Ok(plain);
        }
        let compressor = match &mut self.compressor {
            Some(compressor) => compressor,
            None => self.compressor.insert(zstd::bulk::Compressor::new(3)?),
        };
        self.packed = compressor.compress(plain)?;
        Ok(&self.packed)
    }

    /// Decodes a value read back: decompresses it, checks it and reads its
    /// id and body (in place for rkyv and FlatBuffers).
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Decoded, ValueError> {
        let format = self.spec.format;
        let bytes = if self.spec.compress == Compression::None {
            bytes
        } else {
            let decompressor = match &mut self.decompressor {
                Some(decompressor) => decompressor,
                None => self.decompressor.insert(zstd::bulk::Decompressor::new()?),
            };
            let limit = (self.spec.size as usize).saturating_mul(2) + 4096;
            self.packed = decompressor.decompress(bytes, limit).map_err(|e| decode_error(format, e))?;
            &self.packed
        };
        let record = |r: Record| Decoded { id: r.id, body_len: r.body.len() };
        let decoded = match format {
            ValueFormat::Raw => Decoded { id: 0, body_len: bytes.len() },
            ValueFormat::Json => record(serde_json::from_slice(bytes).map_err(|e| decode_error(format, e))?),
            ValueFormat::Protobuf => {
                record(<Record as prost::Message>::decode(bytes).map_err(|e| decode_error(format, e))?)
            }
            ValueFormat::Msgpack => record(rmp_serde::from_slice(bytes).map_err(|e| decode_error(format, e))?),
            ValueFormat::Bitcode => record(self.bitcode.decode(bytes).map_err(|e| decode_error(format, e))?),
            ValueFormat::Rkyv => {
                // An archive is read where it lies, which must be aligned.
                self.aligned.clear();
                self.aligned.extend_from_slice(bytes);
                let archived = rkyv::access::<ArchivedRecord, rkyv::rancor::Error>(&self.aligned)
                    .map_err(|e| decode_error(format, e))?;
                Decoded { id: archived.id.to_native(), body_len: archived.body.len() }
            }
            ValueFormat::Flatbuffers => {
                let options = VerifierOptions::default();
                let mut verifier = Verifier::new(&options, bytes);
                <ForwardsUOffset<FlatRecord>>::run_verifier(&mut verifier, 0).map_err(|e| decode_error(format, e))?;
                let (id, body) =
                    flat_fields(bytes).ok_or_else(|| decode_error(format, "the table has no body field"))?;
                Decoded { id, body_len: body.len() }
            }
        };
        // A value of another size or format can parse loosely (an empty
        // protobuf message is a valid one); its body tells.
        if decoded.body_len as u64 != self.spec.size {
            return Err(decode_error(
                format,
                format!(
                    "its body holds {} bytes where this run writes {}; the key holds a value of another run",
                    decoded.body_len, self.spec.size
                ),
            ));
        }
        Ok(decoded)
    }
}

/// The pool of values for one agent.
pub fn pool(spec: &ValueSpec, seed: u64) -> Result<Vec<Bytes>, ValueError> {
    let mut codec = Codec::new(spec, seed);
    (0..POOL as u64).map(|id| codec.encode(id).map(Bytes::copy_from_slice)).collect()
}

/// What the report says about the values.
pub fn describe(spec: &ValueSpec, pool: &[Bytes]) -> String {
    let average = pool.iter().map(Bytes::len).sum::<usize>() / pool.len().max(1);
    let compress = if spec.compress == Compression::Zstd { "+zstd" } else { "" };
    format!("values: {}{compress}, {} B requested, {average} B on the wire on average", spec.format.as_str(), spec.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(format: ValueFormat, compress: Compression) -> ValueSpec {
        ValueSpec { size: 200, format, compress }
    }

    #[test]
    fn each_format_decodes_back_to_its_record() {
        let json = pool(&spec(ValueFormat::Json, Compression::None), 1).expect("json");
        let value: serde_json::Value = serde_json::from_slice(&json[3]).expect("valid json");
        assert_eq!(value["id"], 3);
        assert_eq!(value["body"].as_str().map(str::len), Some(200));
        let proto = pool(&spec(ValueFormat::Protobuf, Compression::None), 1).expect("protobuf");
        let record: Record = prost::Message::decode(&proto[5][..]).expect("valid protobuf");
        assert_eq!((record.id, record.body.len()), (5, 200));
        let raw = pool(&spec(ValueFormat::Raw, Compression::None), 1).expect("raw");
        assert!(raw.iter().all(|v| v.len() == 200));
        assert_ne!(raw[0], raw[1]);
    }

    #[test]
    fn every_format_round_trips_through_its_codec_and_refuses_another_formats_bytes() {
        let mut sizes = Vec::new();
        for format in ValueFormat::ALL {
            for compress in [Compression::None, Compression::Zstd] {
                let mut codec = Codec::new(&spec(format, compress), 7);
                for n in [0u64, 5, 1_000_003] {
                    let bytes = codec.encode(n).expect("encode").to_vec();
                    let decoded = codec.decode(&bytes).expect("decode");
                    let id = if format == ValueFormat::Raw { 0 } else { n };
                    assert_eq!(decoded, Decoded { id, body_len: 200 }, "{format:?} {compress:?} {n}");
                    if compress == Compression::None && n == 5 {
                        sizes.push((format, bytes.len()));
                    }
                }
            }
        }
        // A self-describing text format is the largest, a packed binary one
        // the smallest of the records.
        let size = |f: ValueFormat| sizes.iter().find(|(g, _)| *g == f).map(|(_, n)| *n).unwrap_or(0);
        assert!(size(ValueFormat::Json) > size(ValueFormat::Msgpack), "{sizes:?}");
        assert!(size(ValueFormat::Bitcode) <= size(ValueFormat::Protobuf), "{sizes:?}");
        // Garbage, and another format's bytes, are decode errors that name
        // the format (raw takes any bytes of its size).
        let mut json = Codec::new(&spec(ValueFormat::Json, Compression::None), 7);
        let json_bytes = json.encode(1).expect("encode").to_vec();
        for format in ValueFormat::ALL.into_iter().filter(|f| !matches!(f, ValueFormat::Raw | ValueFormat::Json)) {
            let mut codec = Codec::new(&spec(format, Compression::None), 7);
            let error = codec.decode(&json_bytes).expect_err("json bytes are not this format");
            assert!(error.to_string().contains(format.as_str()), "{error}");
            assert!(codec.decode(b"").is_err(), "{format:?} of nothing");
            assert!(codec.decode(&[0x55; 200]).is_err(), "{format:?} of noise");
        }
        assert!(json.decode(b"{\"id\":1").expect_err("cut").to_string().contains("json"));
    }

    #[test]
    fn zstd_values_decompress_to_the_plain_ones() {
        let plain = pool(&spec(ValueFormat::Json, Compression::None), 9).expect("plain");
        let packed = pool(&spec(ValueFormat::Json, Compression::Zstd), 9).expect("zstd");
        let unpacked = zstd::bulk::decompress(&packed[2], 1 << 20).expect("zstd frame");
        assert_eq!(unpacked, plain[2]);
        assert!(describe(&spec(ValueFormat::Json, Compression::Zstd), &packed).starts_with("values: json+zstd"));
    }
}
