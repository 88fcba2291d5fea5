//! The stand-in's SQL: the statements Stampede sends, over in-memory tables.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::{State, Table, error};

/// Handles one `/_sql` request body.
pub(super) fn sql(state: &Mutex<State>, body: &[u8]) -> (u16, Value) {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return error(400, 4000, "the request body must be a JSON object");
    };
    if let Some(key) = request.keys().find(|k| !["stmt", "args", "bulk_args"].contains(&k.as_str())) {
        return error(400, 4000, format!("unknown key `{key}` in the request"));
    }
    let Some(Value::String(statement)) = request.get("stmt") else {
        return error(400, 4000, "`stmt` must be a string");
    };
    if request.contains_key("args") && request.contains_key("bulk_args") {
        return error(400, 4000, "`args` and `bulk_args` cannot be used together");
    }
    let marks = statement.matches('?').count();
    let bulk = match request.get("bulk_args") {
        None => None,
        Some(Value::Array(rows)) => {
            let mut checked = Vec::with_capacity(rows.len());
            for row in rows {
                match row {
                    Value::Array(values) if values.len() == marks => checked.push(values.clone()),
                    _ => return error(400, 4000, format!("every bulk_args row must be an array of {marks} values")),
                }
            }
            Some(checked)
        }
        Some(_) => return error(400, 4000, "`bulk_args` must be an array of arrays"),
    };
    let args = match request.get("args") {
        None => Vec::new(),
        Some(Value::Array(values)) if values.len() == marks => values.clone(),
        Some(_) => return error(400, 4000, format!("`args` must be an array of {marks} values")),
    };
    if bulk.is_none() && args.len() != marks {
        return error(400, 4000, format!("the statement has {marks} parameters and none were given"));
    }
    let started = std::time::Instant::now();
    let mut state = state.lock().expect("state");
    let words: Vec<&str> = statement.split_whitespace().collect();
    let duration = || started.elapsed().as_secs_f64() * 1000.0;
    let answer = |cols: Vec<&str>, rows: Vec<Value>, rowcount: i64| {
        (200, json!({ "cols": cols, "rows": rows, "rowcount": rowcount, "duration": duration() }))
    };
    match words.as_slice() {
        ["CREATE", "TABLE", "IF", "NOT", "EXISTS", name, ..] => {
            let name = name.split('(').next().unwrap_or(name).to_string();
            let Some(open) = statement.find('(') else { return error(400, 4000, "CREATE TABLE without columns") };
            let Some(close) = statement.find(") CLUSTERED").or_else(|| statement.rfind(')')) else {
                return error(400, 4000, "CREATE TABLE without a closing parenthesis");
            };
            // Column definitions are split at commas outside parentheses.
            let mut definitions = Vec::new();
            let mut depth = 0;
            let mut current = String::new();
            for c in statement[open + 1..close].chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => {
                        definitions.push(std::mem::take(&mut current));
                        continue;
                    }
                    _ => {}
                }
                current.push(c);
            }
            definitions.push(current);
            let mut columns = Vec::new();
            let mut types = Vec::new();
            for definition in &definitions {
                let mut words = definition.split_whitespace();
                let name = words.next().unwrap_or("").trim_matches('"').to_string();
                let rest: Vec<String> = words.map(str::to_lowercase).collect();
                let Some(kind) = column_type(&rest.join(" ")) else {
                    return error(400, 4000, format!("the stand-in does not know the type of `{definition}`"));
                };
                columns.push(name);
                types.push(kind.to_string());
            }
            let Some(replicas) =
                statement.split("number_of_replicas = ").nth(1).and_then(|rest| rest.split([')', ',']).next())
            else {
                return error(400, 4000, "the stand-in expects WITH (number_of_replicas = N)");
            };
            let shards = match words.iter().position(|w| *w == "CLUSTERED") {
                Some(at) if words.get(at + 1) == Some(&"INTO") && words.get(at + 3) == Some(&"SHARDS") => {
                    match words.get(at + 2).and_then(|n| n.parse().ok()) {
                        Some(n) => n,
                        None => return error(400, 4000, "CLUSTERED INTO needs a number of shards"),
                    }
                }
                _ => 4,
            };
            let table = Table { columns, types, shards, replicas: replicas.trim().to_string(), ..Table::default() };
            state.tables.entry(name).or_insert(table);
            answer(vec![], vec![], 1)
        }
        ["DROP", "TABLE", "IF", "EXISTS", name] => {
            let existed = state.tables.remove(*name).is_some();
            answer(vec![], vec![], i64::from(existed))
        }
        ["REFRESH", "TABLE", name] => match state.tables.contains_key(*name) {
            true => answer(vec![], vec![], 1),
            false => error(404, 4041, format!("Relation '{name}' unknown")),
        },
        ["INSERT", "INTO", name, ..] => {
            let State { tables, refuse_every, offered, .. } = &mut *state;
            let Some(table) = tables.get_mut(*name) else {
                return error(404, 4041, format!("Relation '{name}' unknown"));
            };
            let (Some(open), Some(close)) = (statement.find('('), statement.find(") VALUES")) else {
                return error(400, 4000, "INSERT INTO t (columns) VALUES (...) expected");
            };
            let columns: Vec<String> =
                statement[open + 1..close].split(',').map(|c| c.trim().trim_matches('"').to_string()).collect();
            if columns.len() != marks {
                return error(400, 4000, "the number of columns and of `?` marks differ");
            }
            if let Some(unknown) = columns.iter().find(|c| !table.columns.contains(c)) {
                return error(404, 4043, format!("Column {unknown} unknown"));
            }
            let mut insert = |values: &[Value]| -> bool {
                let row: BTreeMap<String, Value> = columns.iter().cloned().zip(values.iter().cloned()).collect();
                for (column, value) in &row {
                    if let Value::Object(fields) = value {
                        let keys = table.subcolumns.entry(column.clone()).or_default();
                        keys.extend(fields.keys().cloned());
                    }
                }
                let id = row.get("id").map(Value::to_string).unwrap_or_default();
                *offered += 1;
                if *refuse_every > 0 && offered.is_multiple_of(*refuse_every) {
                    return false;
                }
                if !table.ids.insert(id) {
                    return false;
                }
                table.rows.push(row);
                true
            };
            match bulk {
                Some(rows) => {
                    let results: Vec<Value> =
                        rows.iter().map(|r| json!({ "rowcount": if insert(r) { 1 } else { -2 } })).collect();
                    (200, json!({ "cols": [], "duration": duration(), "results": results }))
                }
                None if insert(&args) => answer(vec![], vec![], 1),
                None => error(409, 4091, "A document with the same primary key exists already"),
            }
        }
        ["SELECT", "count(*)", "FROM", name] => match state.tables.get(*name) {
            Some(table) => answer(vec!["count(*)"], vec![json!([table.rows.len()])], 1),
            None => error(404, 4041, format!("Relation '{name}' unknown")),
        },
        ["SELECT", ..] if statement.contains("FROM information_schema.") => {
            information_schema(&state, statement, &args, answer)
        }
        ["SELECT", ..] => select(&state, statement, &args, answer),
        _ => error(400, 4000, format!("the stand-in cannot parse `{statement}`")),
    }
}

/// The three queries of the `query` workload, computed from the rows.
fn select(
    state: &State,
    statement: &str,
    args: &[Value],
    answer: impl Fn(Vec<&str>, Vec<Value>, i64) -> (u16, Value),
) -> (u16, Value) {
    let Some(name) = statement.split(" FROM ").nth(1).and_then(|rest| rest.split_whitespace().next()) else {
        return error(400, 4000, "SELECT without FROM");
    };
    let Some(table) = state.tables.get(name) else { return error(404, 4041, format!("Relation '{name}' unknown")) };
    let number = |row: &BTreeMap<String, Value>, column: &str| row.get(column).and_then(Value::as_f64).unwrap_or(0.0);
    if statement.contains("date_trunc('hour'") && statement.contains("GROUP BY") {
        let mut buckets: BTreeMap<i64, (u64, f64)> = BTreeMap::new();
        for row in &table.rows {
            let hour = (number(row, "timestamp") as i64 / 3_600_000) * 3_600_000;
            let entry = buckets.entry(hour).or_default();
            entry.0 += 1;
            entry.1 += number(row, "amount");
        }
        let rows = buckets.into_iter().map(|(h, (n, sum))| json!([h, n, sum])).collect();
        let count = i64::try_from(table.rows.len()).unwrap_or(i64::MAX);
        return answer(vec!["bucket", "count(*)", "sum(amount)"], rows, count);
    }
    if statement.starts_with(
        "SELECT region, max(\"timestamp\"), max_by(id, \"timestamp\"), max_by(amount, \"timestamp\") FROM ",
    ) && statement.ends_with(" GROUP BY region ORDER BY region")
    {
        // The newest row of each region.
        let mut latest: BTreeMap<String, &BTreeMap<String, Value>> = BTreeMap::new();
        for row in &table.rows {
            let region = row.get("region").and_then(Value::as_str).unwrap_or_default().to_string();
            let newer = latest.get(&region).is_none_or(|r| number(row, "timestamp") > number(r, "timestamp"));
            if newer {
                latest.insert(region, row);
            }
        }
        let rows: Vec<Value> =
            latest.iter().map(|(region, r)| json!([region, r["timestamp"], r["id"], r["amount"]])).collect();
        let n = rows.len() as i64;
        let columns =
            vec!["region", "max(\"timestamp\")", "max_by(id, \"timestamp\")", "max_by(amount, \"timestamp\")"];
        return answer(columns, rows, n);
    }
    if statement.contains("WHERE user_id = ?") && statement.contains("LIMIT 100") {
        let user = args.first().and_then(Value::as_f64).unwrap_or(-1.0);
        let mut rows: Vec<&BTreeMap<String, Value>> =
            table.rows.iter().filter(|r| number(r, "user_id") == user).collect();
        rows.sort_by(|a, b| number(b, "timestamp").total_cmp(&number(a, "timestamp")));
        let rows: Vec<Value> = rows.iter().take(100).map(|r| json!([r["id"], r["amount"]])).collect();
        let n = rows.len() as i64;
        return answer(vec!["id", "amount"], rows, n);
    }
    error(400, 4000, format!("the stand-in cannot run `{statement}`"))
}

/// The `information_schema` type of a column definition's type words.
fn column_type(definition: &str) -> Option<&'static str> {
    let definition = definition.trim_end_matches(" primary key").trim();
    Some(match definition {
        "text" | "string" => "text",
        "timestamp with time zone" => "timestamp with time zone",
        "integer" | "int" => "integer",
        "bigint" | "long" => "bigint",
        "double precision" | "double" => "double precision",
        "object(dynamic)" | "object" => "object",
        _ => return None,
    })
}

/// The two `information_schema` questions the driver asks about a table:
/// its shards and replicas, and its columns (with the sub-columns of
/// dynamic objects, as CrateDB lists them).
fn information_schema(
    state: &State,
    statement: &str,
    args: &[Value],
    answer: impl Fn(Vec<&str>, Vec<Value>, i64) -> (u16, Value),
) -> (u16, Value) {
    if !statement.contains("table_schema = CURRENT_SCHEMA AND table_name = ?") {
        return error(400, 4000, format!("the stand-in cannot run `{statement}`"));
    }
    let name = args.first().and_then(Value::as_str).unwrap_or_default();
    let table = state.tables.get(name);
    if statement.starts_with("SELECT number_of_shards, number_of_replicas FROM information_schema.tables") {
        let rows: Vec<Value> = table.map(|t| json!([t.shards, t.replicas])).into_iter().collect();
        let n = rows.len() as i64;
        return answer(vec!["number_of_shards", "number_of_replicas"], rows, n);
    }
    if statement.starts_with("SELECT column_name, data_type FROM information_schema.columns")
        && statement.ends_with("ORDER BY ordinal_position")
    {
        let mut rows = Vec::new();
        if let Some(t) = table {
            for (column, kind) in t.columns.iter().zip(&t.types) {
                rows.push(json!([column, kind]));
                for key in t.subcolumns.get(column).into_iter().flatten() {
                    rows.push(json!([format!("{column}['{key}']"), "text"]));
                }
            }
        }
        let n = rows.len() as i64;
        return answer(vec!["column_name", "data_type"], rows, n);
    }
    error(400, 4000, format!("the stand-in cannot run `{statement}`"))
}
