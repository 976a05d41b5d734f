//! Middlebury `.flo` files: magic 202021.25 (f32 LE), width and height (i32 LE), then
//! interleaved `(dx, dy)` f32 LE pairs row by row.

use super::{FlowError, FlowField};
use std::io::{Read, Write};

const MAGIC: f32 = 202021.25;

pub fn write_flo(path: &std::path::Path, flow: &FlowField) -> Result<(), FlowError> {
    let mut bytes = Vec::with_capacity(12 + flow.dx.len() * 8);
    bytes.extend_from_slice(&MAGIC.to_le_bytes());
    bytes.extend_from_slice(&(flow.width as i32).to_le_bytes());
    bytes.extend_from_slice(&(flow.height as i32).to_le_bytes());
    for (dx, dy) in flow.dx.iter().zip(&flow.dy) {
        bytes.extend_from_slice(&dx.to_le_bytes());
        bytes.extend_from_slice(&dy.to_le_bytes());
    }
    std::fs::File::create(path)?.write_all(&bytes)?;
    Ok(())
}

pub fn read_flo(path: &std::path::Path) -> Result<FlowField, FlowError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    let word = |i: usize| -> Result<[u8; 4], FlowError> {
        bytes
            .get(i..i + 4)
            .map(|s| [s[0], s[1], s[2], s[3]])
            .ok_or_else(|| FlowError::Invalid(format!("{}: truncated .flo file", path.display())))
    };
    if f32::from_le_bytes(word(0)?) != MAGIC {
        return Err(FlowError::Invalid(format!(
            "{}: not a .flo file (bad magic)",
            path.display()
        )));
    }
    let w = i32::from_le_bytes(word(4)?);
    let h = i32::from_le_bytes(word(8)?);
    if w <= 0 || h <= 0 || bytes.len() != 12 + (w as usize) * (h as usize) * 8 {
        return Err(FlowError::Invalid(format!(
            "{}: bad .flo size {w}x{h}",
            path.display()
        )));
    }
    let (w, h) = (w as usize, h as usize);
    let mut flow = FlowField::zeros(w, h);
    for i in 0..w * h {
        flow.dx[i] = f32::from_le_bytes(word(12 + i * 8)?);
        flow.dy[i] = f32::from_le_bytes(word(16 + i * 8)?);
    }
    Ok(flow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.flo");
        let mut f = FlowField::zeros(3, 2);
        f.dx[4] = 1.5;
        f.dy[1] = -2.25;
        write_flo(&p, &f).unwrap();
        assert_eq!(read_flo(&p).unwrap(), f);
    }

    #[test]
    fn rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.flo");
        std::fs::write(&p, b"hello world!").unwrap();
        assert!(read_flo(&p).is_err());
    }
}
