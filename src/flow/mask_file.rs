//! Label maps as users hand them over: PNG masks in the encodings that annotation tools write,
//! decoded to class ids, or an error that names the encoding and the values found.
//!
//! Accepted encodings (README "Troubleshooting" lists them for users):
//! - grey, 1 to 16 bits: the value is the class id (0 background, 1 vein, 2 artery, up to 255);
//! - binary grey: only 0 and the bit depth's maximum (0/255, 0/65535): the foreground is class
//!   1 (vein), and [`DecodedMask::binary`] says so, for a warning;
//! - palette: the palette index is the class id (the colours are not looked at);
//! - RGB and RGBA: colours through a [`ColorMap`] (default: black background, the overlay's
//!   class colours, pure blue vein and pure red artery). An image whose pixels are all grey
//!   (r = g = b) is read as grey;
//! - with an alpha channel (grey + alpha, RGBA), fully transparent pixels are background.

use super::labels::{self, unnamed_class_name};
use super::LabelMap;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::Path;

/// Largest decoded PNG buffer accepted (as the `image` crate's default limit).
const MAX_DECODED_BYTES: usize = 512 << 20;
/// Largest mask accepted, in pixels: far above any video frame, well below what would exhaust
/// memory.
const MAX_PIXELS: u64 = 1 << 27;
/// Values or colours listed in a message before "…".
const LISTED: usize = 12;

/// How a PNG stores its samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Grey { bits: u8 },
    GreyAlpha { bits: u8 },
    Palette { bits: u8 },
    Rgb { bits: u8 },
    Rgba { bits: u8 },
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (bits, kind) = match *self {
            Encoding::Grey { bits } => (bits, "grey"),
            Encoding::GreyAlpha { bits } => (bits, "grey+alpha"),
            Encoding::Palette { bits } => (bits, "palette"),
            Encoding::Rgb { bits } => (bits, "RGB"),
            Encoding::Rgba { bits } => (bits, "RGBA"),
        };
        write!(f, "{bits}-bit {kind}")
    }
}

/// Colour → class id for RGB(A) masks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColorMap {
    entries: Vec<([u8; 3], u8)>,
}

impl Default for ColorMap {
    /// Black background; the overlay's colours of classes 1 to 8 (vein #2878ff, artery #ff3232,
    /// …); pure blue (#0000ff) vein and pure red (#ff0000) artery, as annotation tools export.
    fn default() -> Self {
        let mut entries = vec![([0, 0, 0], 0)];
        entries.extend((1..=8u8).map(|id| (labels::color(id), id)));
        entries.extend([([0, 0, 255], labels::VEIN), ([255, 0, 0], labels::ARTERY)]);
        Self { entries }
    }
}

fn hex(rgb: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2])
}

impl ColorMap {
    /// The default map with `spec`'s entries added, replacing a default of the same colour.
    /// `spec`: `#RRGGBB=ID` entries (the `#` optional) separated by commas, semicolons or
    /// spaces, e.g. `#00ff00=1,#ffff00=2`. Empty: the default map.
    pub fn with_entries(spec: &str) -> Result<Self, String> {
        let mut map = Self::default();
        for entry in spec
            .split([',', ';', ' ', '\t', '\n'])
            .filter(|e| !e.is_empty())
        {
            let bad = || {
                format!(
                    "mask-colors entry {entry:?}: expected #RRGGBB=ID (hexadecimal colour, class \
                     id 0-255), e.g. #0000ff=1,#ff0000=2"
                )
            };
            let (color, id) = entry.split_once('=').ok_or_else(bad)?;
            let color = color.trim().trim_start_matches('#');
            let id: u8 = id.trim().parse().map_err(|_| bad())?;
            if color.len() != 6 || !color.is_ascii() {
                return Err(bad());
            }
            let channel = |i: usize| u8::from_str_radix(&color[2 * i..2 * i + 2], 16);
            let rgb = [
                channel(0).map_err(|_| bad())?,
                channel(1).map_err(|_| bad())?,
                channel(2).map_err(|_| bad())?,
            ];
            map.entries.retain(|(c, _)| *c != rgb);
            map.entries.push((rgb, id));
        }
        Ok(map)
    }

    pub fn get(&self, rgb: [u8; 3]) -> Option<u8> {
        self.entries
            .iter()
            .find(|(c, _)| *c == rgb)
            .map(|(_, id)| *id)
    }
}

impl std::fmt::Display for ColorMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries: Vec<String> = self
            .entries
            .iter()
            .map(|(c, id)| format!("{}={id}", hex(*c)))
            .collect();
        f.write_str(&entries.join(","))
    }
}

/// A mask decoded to class ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedMask {
    pub labels: LabelMap,
    pub encoding: Encoding,
    /// A binary mask whose foreground was read as class 1 (vein).
    pub binary: bool,
}

/// `{0, 1, 2}`, at most [`LISTED`] values.
fn value_list(values: impl ExactSizeIterator<Item = impl std::fmt::Display>) -> String {
    let n = values.len();
    let mut text: Vec<String> = values.take(LISTED).map(|v| v.to_string()).collect();
    if n > LISTED {
        text.push(format!("… ({n} values)"));
    }
    format!("{{{}}}", text.join(", "))
}

/// Reads and decodes the PNG mask at `path`.
pub fn read(path: &Path, colors: &ColorMap) -> Result<DecodedMask, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    decode(&bytes, colors)
}

/// Decodes a PNG mask (see the module's documentation for the encodings).
pub fn decode(png_bytes: &[u8], colors: &ColorMap) -> Result<DecodedMask, String> {
    let unreadable = |e: &dyn std::fmt::Display| format!("not a readable PNG ({e})");
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(png_bytes),
        png::Limits {
            bytes: MAX_DECODED_BYTES,
        },
    );
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(|e| unreadable(&e))?;
    let (width, height) = reader.info().size();
    let (color, depth) = reader.output_color_type();
    let bits = depth as u8;
    let encoding = match color {
        png::ColorType::Grayscale => Encoding::Grey { bits },
        png::ColorType::GrayscaleAlpha => Encoding::GreyAlpha { bits },
        png::ColorType::Indexed => Encoding::Palette { bits },
        png::ColorType::Rgb => Encoding::Rgb { bits },
        png::ColorType::Rgba => Encoding::Rgba { bits },
    };
    let size = reader.output_buffer_size();
    if width as u64 * height as u64 > MAX_PIXELS || size.is_none_or(|s| s > MAX_DECODED_BYTES) {
        return Err(format!(
            "{width}x{height} {encoding} PNG is too large for a mask (at most {MAX_PIXELS} pixels)"
        ));
    }
    let mut buffer = vec![0; size.unwrap_or(0)];
    let frame = reader.next_frame(&mut buffer).map_err(|e| unreadable(&e))?;
    let (w, h) = (frame.width as usize, frame.height as usize);
    let rows = buffer.chunks_exact(frame.line_size.max(1)).take(h);
    let channels = color.samples();
    let sample = |row: &[u8], i: usize| -> u16 {
        match bits {
            16 => u16::from_be_bytes([row[2 * i], row[2 * i + 1]]),
            8 => row[i] as u16,
            b => {
                let per_byte = 8 / b as usize;
                let shift = 8 - b as usize * (i % per_byte + 1);
                ((row[i / per_byte] >> shift) & ((1u8 << b) - 1)) as u16
            }
        }
    };
    let max_value = ((1u32 << bits) - 1) as u16;
    let to8 = |v: u16| -> u8 {
        if bits == 16 {
            ((v as u32 * 255 + 32767) / 65535) as u8
        } else {
            v as u8
        }
    };
    match encoding {
        Encoding::Grey { .. } | Encoding::GreyAlpha { .. } | Encoding::Palette { .. } => {
            let mut values = Vec::with_capacity(w * h);
            for row in rows {
                for x in 0..w {
                    let transparent = channels == 2 && sample(row, 2 * x + 1) == 0;
                    values.push(if transparent {
                        0
                    } else {
                        sample(row, channels * x)
                    });
                }
            }
            let palette = matches!(encoding, Encoding::Palette { .. });
            grey_ids(w, h, values, encoding, max_value, !palette)
        }
        Encoding::Rgb { .. } | Encoding::Rgba { .. } => {
            let mut pixels = Vec::with_capacity(w * h);
            for row in rows {
                for x in 0..w {
                    let at = |c: usize| sample(row, channels * x + c);
                    let transparent = channels == 4 && at(3) == 0;
                    pixels.push(if transparent {
                        [0; 3]
                    } else {
                        [to8(at(0)), to8(at(1)), to8(at(2))]
                    });
                }
            }
            if pixels.iter().all(|[r, g, b]| r == g && g == b) {
                let values = pixels.iter().map(|p| p[0] as u16).collect();
                return grey_ids(w, h, values, encoding, 255, true);
            }
            colour_ids(w, h, &pixels, encoding, colors)
        }
    }
}

/// Grey values (or palette indices) as class ids, with the binary rule when `binary_rule`.
fn grey_ids(
    width: usize,
    height: usize,
    values: Vec<u16>,
    encoding: Encoding,
    max_value: u16,
    binary_rule: bool,
) -> Result<DecodedMask, String> {
    let mut present = vec![false; max_value as usize + 1];
    for &v in &values {
        present[v as usize] = true;
    }
    let found: Vec<usize> = (0..present.len()).filter(|&v| present[v]).collect();
    let binary = binary_rule
        && max_value > 1
        && present[max_value as usize]
        && found.iter().all(|&v| v == 0 || v == max_value as usize);
    let data: Vec<u8> = if binary {
        values
            .iter()
            .map(|&v| {
                if v != 0 {
                    labels::VEIN
                } else {
                    labels::BACKGROUND
                }
            })
            .collect()
    } else if found.last().is_some_and(|&v| v > 255) {
        return Err(format!(
            "{encoding} mask with values {}: class ids must be 0 to 255 (0 background, 1 vein, \
             2 artery); save the mask with one id per class (8-bit grey)",
            value_list(found.iter())
        ));
    } else {
        values.iter().map(|&v| v as u8).collect()
    };
    Ok(DecodedMask {
        labels: LabelMap::from_vec(width, height, data).map_err(|e| e.to_string())?,
        encoding,
        binary,
    })
}

/// RGB colours as class ids through `colors`; unknown colours are an error listing them.
fn colour_ids(
    width: usize,
    height: usize,
    pixels: &[[u8; 3]],
    encoding: Encoding,
    colors: &ColorMap,
) -> Result<DecodedMask, String> {
    let mut cache: HashMap<[u8; 3], Option<u8>> = HashMap::new();
    let mut unknown: BTreeMap<[u8; 3], u64> = BTreeMap::new();
    let mut data = Vec::with_capacity(pixels.len());
    for &rgb in pixels {
        match *cache.entry(rgb).or_insert_with(|| colors.get(rgb)) {
            Some(id) => data.push(id),
            None => {
                *unknown.entry(rgb).or_default() += 1;
                data.push(0);
            }
        }
    }
    if !unknown.is_empty() {
        let mut by_count: Vec<([u8; 3], u64)> = unknown.into_iter().collect();
        by_count.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        let mut listed = String::new();
        for (rgb, n) in by_count.iter().take(LISTED) {
            let _ = write!(listed, "{} ({n} px), ", hex(*rgb));
        }
        if by_count.len() > LISTED {
            let _ = write!(listed, "… ({} colours), ", by_count.len());
        }
        return Err(format!(
            "{encoding} mask with colours that are no class: {}; known colours: {colors}. Map \
             them with mask-colors (e.g. #00ff00=1), or save the mask as 8-bit grey class ids",
            listed.trim_end_matches(", ")
        ));
    }
    Ok(DecodedMask {
        labels: LabelMap::from_vec(width, height, data).map_err(|e| e.to_string())?,
        encoding,
        binary: false,
    })
}

/// The non-zero class ids of `labels` that `class_names` (indexed by id) does not name. An
/// error, naming `what` and the ids found, when the mask has non-zero ids and none is named:
/// such a mask is not in class ids (e.g. 0/100/200).
pub fn unnamed_ids(
    labels: &LabelMap,
    class_names: &[String],
    what: &str,
) -> Result<Vec<u8>, String> {
    let areas = labels.areas();
    let found: Vec<usize> = (0..areas.len()).filter(|&id| areas[id] > 0).collect();
    let unnamed: Vec<u8> = found
        .iter()
        .filter(|&&id| id > 0 && id >= class_names.len())
        .map(|&id| id as u8)
        .collect();
    let named = found.iter().any(|&id| id > 0 && id < class_names.len());
    if !unnamed.is_empty() && !named {
        return Err(format!(
            "{what} with values {}: expected class ids {} ({}). Save the mask with one id per \
             class",
            value_list(found.iter()),
            match class_names.len() {
                0 | 1 => "0".to_string(),
                n => format!("0 to {}", n - 1),
            },
            describe_classes(class_names)
        ));
    }
    Ok(unnamed)
}

/// `0 background, 1 vein, 2 artery`.
pub fn describe_classes(class_names: &[String]) -> String {
    class_names
        .iter()
        .enumerate()
        .map(|(id, name)| format!("{id} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The warning for class ids that the model does not name.
pub fn unnamed_ids_warning(what: &str, ids: &[u8], class_names: &[String]) -> String {
    let names: Vec<String> = ids
        .iter()
        .map(|&id| unnamed_class_name(id as usize))
        .collect();
    format!(
        "{what} has class ids that the model does not name: {}; they are propagated as {} \
         (the model's classes: {})",
        value_list(ids.iter()).trim_matches(['{', '}']),
        names.join(", "),
        describe_classes(class_names)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        labels::DEFAULT_NAMES.map(String::from).to_vec()
    }

    /// A PNG of `width` x `height` with `color`/`depth` and raw (packed, big-endian) rows.
    fn png(
        width: u32,
        height: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        palette: Option<Vec<u8>>,
        data: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, width, height);
            encoder.set_color(color);
            encoder.set_depth(depth);
            if let Some(p) = palette {
                encoder.set_palette(p);
            }
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(data).unwrap();
        }
        out
    }

    fn grey8(values: &[u8]) -> Vec<u8> {
        png(
            values.len() as u32,
            1,
            png::ColorType::Grayscale,
            png::BitDepth::Eight,
            None,
            values,
        )
    }

    fn grey16(values: &[u16]) -> Vec<u8> {
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        png(
            values.len() as u32,
            1,
            png::ColorType::Grayscale,
            png::BitDepth::Sixteen,
            None,
            &raw,
        )
    }

    fn rgb8(pixels: &[[u8; 3]]) -> Vec<u8> {
        png(
            pixels.len() as u32,
            1,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            None,
            &pixels.concat(),
        )
    }

    fn ids(bytes: &[u8]) -> Vec<u8> {
        decode(bytes, &ColorMap::default()).unwrap().labels.data
    }

    #[test]
    fn grey_8_bit_values_are_class_ids() {
        let m = decode(&grey8(&[0, 1, 2, 1]), &ColorMap::default()).unwrap();
        assert_eq!(m.labels.data, vec![0, 1, 2, 1]);
        assert_eq!(m.encoding, Encoding::Grey { bits: 8 });
        assert!(!m.binary);
    }

    #[test]
    fn grey_16_bit_values_are_class_ids() {
        let bytes = grey16(&[0, 1, 2, 2]);
        let m = decode(&bytes, &ColorMap::default()).unwrap();
        assert_eq!(m.labels.data, vec![0, 1, 2, 2]);
        assert_eq!(m.encoding.to_string(), "16-bit grey");
    }

    #[test]
    fn grey_16_bit_values_above_255_are_an_error_listing_them() {
        let bytes = grey16(&[0, 1000, 2000]);
        let err = decode(&bytes, &ColorMap::default()).unwrap_err();
        assert!(
            err.contains("16-bit grey mask with values {0, 1000, 2000}"),
            "{err}"
        );
    }

    #[test]
    fn binary_masks_read_the_foreground_as_vein() {
        for bytes in [
            grey8(&[0, 255, 255, 0]),
            png(
                4,
                1,
                png::ColorType::Grayscale,
                png::BitDepth::Sixteen,
                None,
                &[0, 0, 255, 255, 255, 255, 0, 0],
            ),
            rgb8(&[[0; 3], [255; 3], [255; 3], [0; 3]]),
        ] {
            let m = decode(&bytes, &ColorMap::default()).unwrap();
            assert_eq!(m.labels.data, vec![0, 1, 1, 0], "{:?}", m.encoding);
            assert!(m.binary);
        }
        // 0/1 is class ids, not the binary rule.
        assert!(
            !decode(&grey8(&[0, 1]), &ColorMap::default())
                .unwrap()
                .binary
        );
    }

    #[test]
    fn low_bit_depths_unpack_to_ids() {
        // 2-bit grey: 0 1 2 3 | 2 0 (a row of 6 samples, padded).
        let bytes = png(
            6,
            1,
            png::ColorType::Grayscale,
            png::BitDepth::Two,
            None,
            &[0b00_01_10_11, 0b10_00_00_00],
        );
        assert_eq!(ids(&bytes), vec![0, 1, 2, 3, 2, 0]);
    }

    #[test]
    fn palette_index_is_the_class_id() {
        let palette = vec![0, 0, 0, 10, 200, 30, 250, 250, 0];
        let bytes = png(
            4,
            1,
            png::ColorType::Indexed,
            png::BitDepth::Eight,
            Some(palette.clone()),
            &[0, 1, 2, 1],
        );
        let m = decode(&bytes, &ColorMap::default()).unwrap();
        assert_eq!(m.labels.data, vec![0, 1, 2, 1]);
        assert_eq!(m.encoding, Encoding::Palette { bits: 8 });
        let bytes = png(
            3,
            1,
            png::ColorType::Indexed,
            png::BitDepth::Four,
            Some(palette),
            &[0x12, 0x00],
        );
        assert_eq!(ids(&bytes), vec![1, 2, 0]);
    }

    #[test]
    fn rgb_colours_map_to_classes() {
        let bytes = rgb8(&[
            [0, 0, 0],
            [0, 0, 255],
            [255, 0, 0],
            labels::color(1),
            labels::color(2),
        ]);
        assert_eq!(ids(&bytes), vec![0, 1, 2, 1, 2]);
        let custom = ColorMap::with_entries("#00ff00=1; ffff00=2").unwrap();
        let bytes = rgb8(&[[0, 255, 0], [255, 255, 0], [0, 0, 255]]);
        assert_eq!(decode(&bytes, &custom).unwrap().labels.data, vec![1, 2, 1]);
        // An entry replaces the default of the same colour.
        let swapped = ColorMap::with_entries("#0000ff=2").unwrap();
        assert_eq!(
            decode(&rgb8(&[[0, 0, 255]]), &swapped).unwrap().labels.data,
            vec![2]
        );
    }

    #[test]
    fn rgba_transparent_pixels_are_background() {
        let raw = [0, 0, 255, 255, 0, 0, 255, 0, 255, 0, 0, 255, 10, 20, 30, 0];
        let bytes = png(4, 1, png::ColorType::Rgba, png::BitDepth::Eight, None, &raw);
        let m = decode(&bytes, &ColorMap::default()).unwrap();
        assert_eq!(m.labels.data, vec![1, 0, 2, 0]);
        assert_eq!(m.encoding.to_string(), "8-bit RGBA");
        let grey_alpha = png(
            3,
            1,
            png::ColorType::GrayscaleAlpha,
            png::BitDepth::Eight,
            None,
            &[2, 255, 1, 0, 1, 255],
        );
        assert_eq!(ids(&grey_alpha), vec![2, 0, 1]);
    }

    #[test]
    fn unknown_colours_are_an_error_naming_them() {
        let err = decode(
            &rgb8(&[[0, 0, 255], [18, 54, 7], [18, 54, 7]]),
            &ColorMap::default(),
        )
        .unwrap_err();
        assert!(err.contains("8-bit RGB mask"), "{err}");
        assert!(err.contains("#123607 (2 px)"), "{err}");
        assert!(err.contains("mask-colors"), "{err}");
    }

    #[test]
    fn bad_colour_entries_are_explained() {
        for spec in ["#00ff00", "#00ff0=1", "#00ff00=256", "zz0000=1"] {
            let err = ColorMap::with_entries(spec).unwrap_err();
            assert!(err.contains("#RRGGBB=ID"), "{spec}: {err}");
        }
        assert_eq!(ColorMap::with_entries("").unwrap(), ColorMap::default());
    }

    #[test]
    fn not_a_png_is_an_error() {
        let err = decode(b"GIF89a", &ColorMap::default()).unwrap_err();
        assert!(err.contains("not a readable PNG"), "{err}");
    }

    #[test]
    fn ids_without_names_are_listed_and_a_mask_of_none_is_an_error() {
        let mask = |data: Vec<u8>| LabelMap::from_vec(data.len(), 1, data).unwrap();
        assert_eq!(unnamed_ids(&mask(vec![0, 1, 2]), &names(), "m"), Ok(vec![]));
        assert_eq!(
            unnamed_ids(&mask(vec![0, 1, 7, 3]), &names(), "m"),
            Ok(vec![3, 7])
        );
        let err = unnamed_ids(&mask(vec![0, 100, 200]), &names(), "8-bit grey mask").unwrap_err();
        assert!(
            err.contains("8-bit grey mask with values {0, 100, 200}: expected class ids 0 to 2 (0 background, 1 vein, 2 artery)"),
            "{err}"
        );
        assert_eq!(unnamed_ids(&mask(vec![0, 0]), &names(), "m"), Ok(vec![]));
    }
}
