//! Operation generators. A workload turns a random stream into operations
//! for one agent's share of the key space; it never touches the network.

pub mod kv;

/// One operation to execute. `index` is its position in the workload's
/// operation list (`Workload::operations()`), used to record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Get { key: u64 },
    Set { key: u64 },
}

impl Operation {
    pub fn index(&self) -> usize {
        match self {
            Self::Get { .. } => 0,
            Self::Set { .. } => 1,
        }
    }
}
