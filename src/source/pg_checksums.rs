//! The deeper PostgreSQL check (`check = "checksums"`): a checksum of each
//! table's content, so a restore that lost or changed a row without
//! changing the counts fails its check. Each row's text is hashed and the
//! sorted hashes hashed again: the order rows come back in does not
//! matter, and the server never holds more than 32 bytes a row.

use crate::repo::snapshot::Facts;
use anyhow::{anyhow, Result};
use postgres::Client;

/// Tables larger than this are not checksummed at backup (each check reads
/// the whole table); the restore point names the ones left out.
pub const MAX_TABLE_BYTES: i64 = 1 << 30;

const KEY: &str = "checksum ";

/// Which tables get a checksum.
pub enum Checksums<'a> {
    Off,
    /// Every table up to [`MAX_TABLE_BYTES`] (a backup).
    All,
    /// The tables a restore point has checksums for (a check against it).
    As(&'a Facts),
}

/// Adds `checksum SCHEMA.TABLE` → md5 to `f.objects` for the tables
/// `which` names, as seen by `client`'s current transaction. `describe`
/// words the server's errors.
pub fn add(
    client: &mut Client,
    which: Checksums<'_>,
    f: &mut Facts,
    describe: fn(&postgres::Error) -> String,
) -> Result<()> {
    let recorded: Vec<&str> = match &which {
        Checksums::Off => return Ok(()),
        Checksums::All => Vec::new(),
        Checksums::As(facts) => {
            let r: Vec<&str> = facts
                .objects
                .keys()
                .filter_map(|k| k.strip_prefix(KEY))
                .collect();
            if r.is_empty() {
                return Ok(());
            }
            r
        }
    };
    let err = |e: postgres::Error| anyhow!("PostgreSQL: {}", describe(&e));
    let tables = client
        .query(
            "SELECT n.nspname::text, c.relname::text, pg_table_size(c.oid) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2",
            &[],
        )
        .map_err(err)?;
    let mut skipped = Vec::new();
    for t in tables {
        let (ns, rel, size): (String, String, i64) = (t.get(0), t.get(1), t.get(2));
        let name = format!("{ns}.{rel}");
        match &which {
            Checksums::As(_) if !recorded.contains(&name.as_str()) => continue,
            Checksums::All if size > MAX_TABLE_BYTES => {
                skipped.push(name);
                continue;
            }
            _ => {}
        }
        let sum: String = client
            .query_one(
                &format!(
                    "SELECT coalesce(md5(string_agg(h, '' ORDER BY h)), md5('')) \
                     FROM (SELECT md5(t::text) AS h FROM {}.{} t) s",
                    quote(&ns),
                    quote(&rel)
                ),
                &[],
            )
            .map_err(|e| anyhow!("PostgreSQL: checksumming {name}: {}", describe(&e)))?
            .get(0);
        f.objects.insert(format!("{KEY}{name}"), sum);
    }
    if !skipped.is_empty() {
        f.notes.insert(
            "checksums left out (tables over 1 GiB)".into(),
            skipped.join(", "),
        );
    }
    Ok(())
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}
