//! All encryption is age (X25519). Nothing here invents cryptography: it
//! only chooses which age recipients an object is sealed to.

use anyhow::{anyhow, Context, Result};
use std::io::{Read, Write};

pub use age::x25519::{Identity, Recipient};

pub fn seal(recipients: &[&Recipient], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(plaintext.len() + 256 + plaintext.len() / 4096);
    seal_to(recipients, plaintext, &mut out)?;
    Ok(out)
}

/// Seals into a writer, for objects too big to hold twice in memory.
pub fn seal_to(recipients: &[&Recipient], plaintext: &[u8], out: &mut dyn Write) -> Result<()> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| *r as &dyn age::Recipient))
            .map_err(|e| anyhow!("age: {e}"))?;
    let mut w = encryptor.wrap_output(out).context("age: writing header")?;
    w.write_all(plaintext)?;
    w.finish()?;
    Ok(())
}

/// Opens a whole sealed object.
pub fn open(identities: &[&Identity], ciphertext: &[u8]) -> Result<Vec<u8>> {
    let mut r = reader(identities, ciphertext)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .context("decrypting (the object is damaged)")?;
    Ok(out)
}

/// A seekable plaintext view of a sealed object.
pub fn reader<R: Read>(identities: &[&Identity], input: R) -> Result<age::stream::StreamReader<R>> {
    // age's own message for a bad header suggests upgrading; for us it
    // means damage, so say that.
    let d = age::Decryptor::new(input).map_err(|e| {
        let first = e.to_string().lines().next().unwrap_or_default().to_string();
        anyhow!("the object is damaged: its age header cannot be parsed ({first})")
    })?;
    d.decrypt(identities.iter().map(|i| *i as &dyn age::Identity))
        .map_err(|e| {
            anyhow!("cannot decrypt: {e} (the object is damaged or sealed for another key)")
        })
}

pub fn parse_identity(s: &str) -> Result<Identity> {
    s.trim()
        .parse::<Identity>()
        .map_err(|e| anyhow!("not an age identity: {e}"))
}

pub fn parse_recipient(s: &str) -> Result<Recipient> {
    s.trim()
        .parse::<Recipient>()
        .map_err(|e| anyhow!("not an age recipient (age1…): {e}"))
}

/// Keyed BLAKE3: chunk ids reveal nothing about content to whoever stores them.
pub fn chunk_id(key: &[u8; 32], data: &[u8]) -> super::ChunkId {
    super::ChunkId(*blake3::keyed_hash(key, data).as_bytes())
}
