//! Arbitrary bytes through the KV server's whole request path: the RESP
//! parser, then every parsed request executed against a real store. Nothing
//! may panic, and the parser must consume input or ask for more.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use stampede_kvserver::cmd::execute;
use stampede_kvserver::connection::Client;
use stampede_kvserver::resp::parse_request;
use stampede_kvserver::{ServerConfig, Shared};

fuzz_target!(|data: &[u8]| {
    let shared = Shared::new(ServerConfig { maxmemory: 1 << 20, ..ServerConfig::default() }, 6380);
    let mut client = Client::new(1, true);
    let mut input = BytesMut::from(data);
    let mut output = BytesMut::new();
    loop {
        let before = input.len();
        match parse_request(&mut input) {
            Ok(Some(args)) => {
                assert!(input.len() < before || args.is_empty(), "a parsed request consumes input");
                if !args.is_empty() {
                    execute(args, &shared, &mut client, &mut output);
                }
                if client.quit {
                    break;
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
});
