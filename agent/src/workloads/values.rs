//! The values a workload writes, in the formats of the seed's
//! serialization comparison: raw bytes, a JSON record or the same record as
//! a protobuf message, each optionally zstd-compressed. A small pool of
//! distinct values is encoded once before the run, so that encoding never
//! shows up in measured latency; the report notes the encoded size.

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use stampede_common::scenario::{Compression, ValueFormat, ValueSpec};

/// Distinct values per agent; operations pick one by key.
pub const POOL: usize = 16;

/// The record behind `json` and `protobuf` values.
#[derive(Clone, PartialEq, serde::Serialize, prost::Message)]
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

/// A value that could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error("cannot encode a JSON value: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot compress a value with zstd: {0}")]
    Zstd(#[from] std::io::Error),
}

/// Encodes one value of `spec`: `size` is the raw size or the record's
/// text body size.
pub fn encode(spec: &ValueSpec, rng: &mut SmallRng, id: u64) -> Result<Bytes, ValueError> {
    let size = spec.size as usize;
    let plain = match spec.format {
        ValueFormat::Raw => {
            let mut bytes = vec![0u8; size];
            rng.fill_bytes(&mut bytes);
            bytes
        }
        ValueFormat::Json => serde_json::to_vec(&record(rng, id, size))?,
        ValueFormat::Protobuf => prost::Message::encode_to_vec(&record(rng, id, size)),
    };
    let bytes = match spec.compress {
        Compression::None => plain,
        Compression::Zstd => zstd::bulk::compress(&plain, 3)?,
    };
    Ok(Bytes::from(bytes))
}

/// The pool of values for one agent.
pub fn pool(spec: &ValueSpec, seed: u64) -> Result<Vec<Bytes>, ValueError> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..POOL as u64).map(|id| encode(spec, &mut rng, id)).collect()
}

/// What the report says about the values.
pub fn describe(spec: &ValueSpec, pool: &[Bytes]) -> String {
    let average = pool.iter().map(Bytes::len).sum::<usize>() / pool.len().max(1);
    let format = match spec.format {
        ValueFormat::Raw => "raw",
        ValueFormat::Json => "json",
        ValueFormat::Protobuf => "protobuf",
    };
    let compress = if spec.compress == Compression::Zstd { "+zstd" } else { "" };
    format!("values: {format}{compress}, {} B requested, {average} B on the wire on average", spec.size)
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
    fn zstd_values_decompress_to_the_plain_ones() {
        let plain = pool(&spec(ValueFormat::Json, Compression::None), 9).expect("plain");
        let packed = pool(&spec(ValueFormat::Json, Compression::Zstd), 9).expect("zstd");
        let unpacked = zstd::bulk::decompress(&packed[2], 1 << 20).expect("zstd frame");
        assert_eq!(unpacked, plain[2]);
        assert!(describe(&spec(ValueFormat::Json, Compression::Zstd), &packed).starts_with("values: json+zstd"));
    }
}
