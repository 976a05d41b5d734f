//! Pixel formats: luma extraction for the model and overlays drawn in place. Pure Rust over
//! plane slices with strides, so the element glue only maps frames.

use fast_image_resize as fr;

/// The raw video formats pddflow accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    Gray8,
    Gray16Le,
    Rgb,
    Bgr,
    Rgba,
    Bgra,
    Rgbx,
    Bgrx,
    I420,
    Nv12,
}

impl PixelFormat {
    /// Byte offsets of R, G, B and the pixel size for packed RGB formats.
    fn rgb_layout(self) -> Option<([usize; 3], usize)> {
        match self {
            Self::Rgb => Some(([0, 1, 2], 3)),
            Self::Bgr => Some(([2, 1, 0], 3)),
            Self::Rgba | Self::Rgbx => Some(([0, 1, 2], 4)),
            Self::Bgra | Self::Bgrx => Some(([2, 1, 0], 4)),
            _ => None,
        }
    }

    /// Number of planes of a frame in this format.
    pub fn n_planes(self) -> usize {
        match self {
            Self::I420 => 3,
            Self::Nv12 => 2,
            _ => 1,
        }
    }

    /// Bytes that one row of `plane` needs at `width` pixels (the smallest valid stride) and the
    /// number of rows of that plane at `height`.
    pub fn plane_size(self, plane: usize, width: usize, height: usize) -> (usize, usize) {
        let (half_w, half_h) = (width.div_ceil(2), height.div_ceil(2));
        match (self, plane) {
            (Self::Gray8 | Self::I420 | Self::Nv12, 0) => (width, height),
            (Self::I420, _) => (half_w, half_h),
            (Self::Nv12, _) => (2 * half_w, half_h),
            (Self::Gray16Le, _) => (2 * width, height),
            (Self::Rgb | Self::Bgr, _) => (3 * width, height),
            _ => (4 * width, height),
        }
    }

    /// Checks that `planes` (`(bytes available, stride)` per plane, as a mapped frame lays them
    /// out) hold a `width` x `height` frame, so that reading or drawing cannot go out of bounds.
    pub fn check_layout(
        self,
        width: usize,
        height: usize,
        planes: &[(usize, isize)],
    ) -> Result<(), String> {
        if planes.len() < self.n_planes() {
            return Err(format!(
                "{:?} needs {} planes, the buffer maps {}",
                self,
                self.n_planes(),
                planes.len()
            ));
        }
        for (plane, &(len, stride)) in planes.iter().take(self.n_planes()).enumerate() {
            let (row, rows) = self.plane_size(plane, width, height);
            if stride <= 0 {
                return Err(format!(
                    "plane {plane} has stride {stride}: negative (bottom-up) and zero strides are not supported"
                ));
            }
            let stride = stride as usize;
            if stride < row {
                return Err(format!(
                    "plane {plane} has stride {stride}, less than the {row} bytes of a {width}-pixel row"
                ));
            }
            let needed = stride * rows.saturating_sub(1) + row;
            if len < needed {
                return Err(format!(
                    "plane {plane} maps {len} bytes, a {width}x{height} {self:?} frame needs {needed}"
                ));
            }
        }
        Ok(())
    }
}

pub fn rgb_to_yuv([r, g, b]: [u8; 3]) -> [u8; 3] {
    // BT.601 limited range, as GStreamer's default for SD-style YUV.
    let (r, g, b) = (r as f32, g as f32, b as f32);
    let y = 16.0 + 0.2568 * r + 0.5041 * g + 0.0979 * b;
    let u = 128.0 - 0.1482 * r - 0.2910 * g + 0.4392 * b;
    let v = 128.0 + 0.4392 * r - 0.3678 * g - 0.0714 * b;
    [y.round() as u8, u.round() as u8, v.round() as u8]
}

/// Extracts 8-bit luma (`width * height`, contiguous) from the planes of a frame.
/// `planes` holds `(data, stride)` per plane as the format defines them. With `across_threads`,
/// large frames are split over rayon's pool; without, the calling thread does it all (for a
/// caller whose other cores are busy, where waiting for a split costs more than it saves).
pub fn extract_luma(
    format: PixelFormat,
    width: usize,
    height: usize,
    planes: &[(&[u8], usize)],
    across_threads: bool,
) -> Vec<u8> {
    let mut out = vec![0u8; width * height];
    if width == 0 {
        return out;
    }
    let (data, stride) = planes[0];
    let convert: fn(&[u8], &mut [u8]) = match format {
        PixelFormat::Gray8 | PixelFormat::I420 | PixelFormat::Nv12 => {
            |row, dst| dst.copy_from_slice(&row[..dst.len()])
        }
        PixelFormat::Gray16Le => |row, dst| {
            for (d, p) in dst.iter_mut().zip(row.chunks_exact(2)) {
                *d = p[1];
            }
        },
        // One function per byte layout, so that the offsets are constants.
        PixelFormat::Rgb => luma_converter::<3, 0, 2>(),
        PixelFormat::Bgr => luma_converter::<3, 2, 0>(),
        PixelFormat::Rgba | PixelFormat::Rgbx => luma_converter::<4, 0, 2>(),
        PixelFormat::Bgra | PixelFormat::Bgrx => luma_converter::<4, 2, 0>(),
    };
    let row = |y: usize, dst: &mut [u8]| convert(&data[y * stride..], dst);
    if across_threads && width * height >= PARALLEL_LUMA_PIXELS {
        // A 1080p RGBx frame is 8 MB to read: the rows are split across rayon's pool.
        use rayon::prelude::*;
        out.par_chunks_mut(width)
            .enumerate()
            .for_each(|(y, dst)| row(y, dst));
    } else {
        for (y, dst) in out.chunks_exact_mut(width).enumerate() {
            row(y, dst);
        }
    }
    out
}

/// Frames from this many pixels on have their luma extracted in parallel (below it, the
/// pool's hand-off costs more than it saves).
const PARALLEL_LUMA_PIXELS: usize = 1 << 18;

/// [`luma_row`] for this layout, compiled for AVX2 where the CPU has it: the same integer code,
/// the same bytes, about 2.4× faster on a 1080p RGBx row (the baseline x86-64 build assembles
/// each pixel from single-byte loads).
fn luma_converter<const PX: usize, const R: usize, const B: usize>() -> fn(&[u8], &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked on the line above.
        return |row, dst| unsafe { luma_row_avx2::<PX, R, B>(row, dst) };
    }
    luma_row::<PX, R, B>
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn luma_row_avx2<const PX: usize, const R: usize, const B: usize>(row: &[u8], dst: &mut [u8]) {
    luma_row::<PX, R, B>(row, dst)
}

/// Luma of one packed RGB row of `PX`-byte pixels with red at byte `R`, green at 1, blue at `B`:
/// (77 R + 150 G + 29 B) / 256.
#[inline(always)]
fn luma_row<const PX: usize, const R: usize, const B: usize>(row: &[u8], dst: &mut [u8]) {
    if PX == 4 {
        // Whole 32-bit pixels, the channels by shifts: the compiler vectorises this, where
        // byte-by-byte reads of a 4-byte stride became one load per byte.
        for (d, p) in dst.iter_mut().zip(row.chunks_exact(4)) {
            let v = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
            let channel = |i: usize| (v >> (8 * i)) & 0xff;
            *d = ((77 * channel(R) + 150 * channel(1) + 29 * channel(B)) >> 8) as u8;
        }
    } else {
        for (d, p) in dst.iter_mut().zip(row.chunks_exact(PX)) {
            let l = 77 * p[R] as u32 + 150 * p[1] as u32 + 29 * p[B] as u32;
            *d = (l >> 8) as u8;
        }
    }
}

/// Resizes frame luma to the model's input and scales it to [0, 1].
pub struct ModelInput {
    resizer: fr::Resizer,
    width: usize,
    height: usize,
}

impl ModelInput {
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            resizer: fr::Resizer::new(),
            width,
            height,
        }
    }

    pub fn prepare(&mut self, luma: &[u8], width: usize, height: usize) -> Vec<f32> {
        let scale = |v: &u8| *v as f32 / 255.0;
        if (width, height) == (self.width, self.height) {
            return luma.iter().map(scale).collect();
        }
        let src = fr::images::ImageRef::new(width as u32, height as u32, luma, fr::PixelType::U8)
            .expect("luma buffer matches its size");
        let mut dst =
            fr::images::Image::new(self.width as u32, self.height as u32, fr::PixelType::U8);
        let options = fr::ResizeOptions::new()
            .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear));
        self.resizer
            .resize(&src, &mut dst, &options)
            .expect("same pixel type on both sides");
        dst.buffer().iter().map(scale).collect()
    }
}

/// A colour at one opacity, prepared for a canvas's format: for every byte value a channel can
/// hold, the value [`Canvas::blend`] turns it into. Spans drawn with it ([`Canvas::fill_span`])
/// are identical to blending their pixels one by one.
pub struct Paint {
    rgb: [u8; 3],
    alpha: f32,
    /// Per channel (R, G, B and alpha for packed RGB; Y, U, V for YUV; luma first for grey):
    /// the blended value of each old value.
    tables: [[u8; 256]; 4],
}

impl Paint {
    fn table(target: u8, alpha: f32) -> [u8; 256] {
        std::array::from_fn(|old| blend(old as u8, target, alpha))
    }
}

/// A frame's planes, writable pixel by pixel in RGB whatever the format.
pub struct Canvas<'a, 'b> {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    planes: &'a mut [(&'b mut [u8], usize)],
    /// Whether [`Canvas::blend`] also composites coverage into the alpha byte of RGBA and BGRA.
    alpha: bool,
}

impl<'a, 'b> Canvas<'a, 'b> {
    /// `planes` holds `(data, stride)` per plane as the format defines them.
    pub fn new(
        format: PixelFormat,
        width: usize,
        height: usize,
        planes: &'a mut [(&'b mut [u8], usize)],
    ) -> Self {
        Self {
            format,
            width,
            height,
            planes,
            alpha: false,
        }
    }

    /// A canvas that draws an image of its own rather than onto video: [`Canvas::blend`] also
    /// composites the coverage into the alpha byte (RGBA and BGRA; other formats have none).
    /// Started from transparent black (all zeros), the image is then premultiplied: drawing
    /// `c` at opacity `a` over it is `c * a + pixel * (1 - a)` on every channel, alpha
    /// included (`c` = 255 for alpha), the "over" operator. So compositing the image onto a
    /// frame gives what drawing the same calls onto the frame gives, up to rounding.
    pub fn with_alpha(mut self) -> Self {
        self.alpha = true;
        self
    }

    /// `rgb` at opacity `alpha` prepared for this canvas's format, for [`Canvas::fill_span`].
    pub fn paint(&self, rgb: [u8; 3], alpha: f32) -> Paint {
        let targets = match self.format {
            PixelFormat::Gray8 | PixelFormat::Gray16Le => [rgb_to_yuv(rgb)[0].max(160), 0, 0, 0],
            PixelFormat::I420 | PixelFormat::Nv12 => {
                let [y, u, v] = rgb_to_yuv(rgb);
                [y, u, v, 0]
            }
            _ => [rgb[0], rgb[1], rgb[2], 255],
        };
        Paint {
            rgb,
            alpha,
            tables: targets.map(|t| Paint::table(t, alpha)),
        }
    }

    /// Blends `paint` over pixels `x0..x1` of row `y` (parts outside the frame are left out):
    /// the same as [`Canvas::blend`] on each of them, a table lookup per byte.
    pub fn fill_span(&mut self, y: i64, x0: i64, x1: i64, paint: &Paint) {
        let (x0, x1) = (x0.max(0), x1.min(self.width as i64));
        if y < 0 || y >= self.height as i64 || x0 >= x1 || paint.alpha <= 0.0 {
            return;
        }
        let (y, x0, x1) = (y as usize, x0 as usize, x1 as usize);
        let [t0, t1, t2, t3] = &paint.tables;
        match self.format {
            PixelFormat::Gray8 => {
                let (data, stride) = &mut self.planes[0];
                for p in &mut data[y * *stride..][x0..x1] {
                    *p = t0[*p as usize];
                }
            }
            // 16-bit values: no table, the pixels one by one.
            PixelFormat::Gray16Le => {
                for x in x0..x1 {
                    self.blend(x as i64, y as i64, paint.rgb, paint.alpha);
                }
            }
            PixelFormat::I420 | PixelFormat::Nv12 => {
                {
                    let (luma, stride) = &mut self.planes[0];
                    for p in &mut luma[y * *stride..][x0..x1] {
                        *p = t0[*p as usize];
                    }
                }
                if y % 2 != 0 {
                    return;
                }
                // Chroma on even pixels only, as `blend` does.
                let (c0, c1) = (x0.div_ceil(2), x1.div_ceil(2));
                let cy = y / 2;
                if self.format == PixelFormat::I420 {
                    let (up, us) = &mut self.planes[1];
                    for p in &mut up[cy * *us..][c0..c1] {
                        *p = t1[*p as usize];
                    }
                    let (vp, vs) = &mut self.planes[2];
                    for p in &mut vp[cy * *vs..][c0..c1] {
                        *p = t2[*p as usize];
                    }
                } else {
                    let (uv, s) = &mut self.planes[1];
                    for p in uv[cy * *s..][2 * c0..2 * c1].chunks_exact_mut(2) {
                        p[0] = t1[p[0] as usize];
                        p[1] = t2[p[1] as usize];
                    }
                }
            }
            _ => {
                let ([r, g, b], px) = self.format.rgb_layout().expect("packed RGB format");
                let alpha =
                    self.alpha && matches!(self.format, PixelFormat::Rgba | PixelFormat::Bgra);
                let (data, stride) = &mut self.planes[0];
                for p in data[y * *stride..][x0 * px..x1 * px].chunks_exact_mut(px) {
                    p[r] = t0[p[r] as usize];
                    p[g] = t1[p[g] as usize];
                    p[b] = t2[p[b] as usize];
                    if alpha {
                        p[3] = t3[p[3] as usize];
                    }
                }
            }
        }
    }

    /// Blends `rgb` over pixel `(x, y)` with opacity `alpha`; outside the frame does nothing.
    /// Grey formats get the colour's luma (raised so that dark colours stay visible); 4:2:0
    /// formats blend chroma on even pixels only, which is enough for overlays.
    pub fn blend(&mut self, x: i64, y: i64, rgb: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 || alpha <= 0.0 {
            return;
        }
        let (x, y) = (x as usize, y as usize);
        match self.format {
            PixelFormat::Gray8 => {
                let (data, stride) = &mut self.planes[0];
                let p = &mut data[y * *stride + x];
                *p = blend(*p, rgb_to_yuv(rgb)[0].max(160), alpha);
            }
            PixelFormat::Gray16Le => {
                let (data, stride) = &mut self.planes[0];
                let i = y * *stride + 2 * x;
                let v = u16::from_le_bytes([data[i], data[i + 1]]) as f32;
                let t = rgb_to_yuv(rgb)[0].max(160) as f32 * 257.0;
                data[i..i + 2]
                    .copy_from_slice(&((v + (t - v) * alpha).round() as u16).to_le_bytes());
            }
            PixelFormat::I420 | PixelFormat::Nv12 => {
                let [yy, u, v] = rgb_to_yuv(rgb);
                {
                    let (luma, stride) = &mut self.planes[0];
                    let p = &mut luma[y * *stride + x];
                    *p = blend(*p, yy, alpha);
                }
                if x % 2 == 0 && y % 2 == 0 {
                    let (cx, cy) = (x / 2, y / 2);
                    if self.format == PixelFormat::I420 {
                        let (up, us) = &mut self.planes[1];
                        let p = &mut up[cy * *us + cx];
                        *p = blend(*p, u, alpha);
                        let (vp, vs) = &mut self.planes[2];
                        let p = &mut vp[cy * *vs + cx];
                        *p = blend(*p, v, alpha);
                    } else {
                        let (uv, s) = &mut self.planes[1];
                        let i = cy * *s + 2 * cx;
                        uv[i] = blend(uv[i], u, alpha);
                        uv[i + 1] = blend(uv[i + 1], v, alpha);
                    }
                }
            }
            _ => {
                let (offsets, px) = self.format.rgb_layout().expect("packed RGB format");
                let (data, stride) = &mut self.planes[0];
                let base = y * *stride + x * px;
                for c in 0..3 {
                    let p = &mut data[base + offsets[c]];
                    *p = blend(*p, rgb[c], alpha);
                }
                if self.alpha && matches!(self.format, PixelFormat::Rgba | PixelFormat::Bgra) {
                    let p = &mut data[base + 3];
                    *p = blend(*p, 255, alpha);
                }
            }
        }
    }
}

#[inline]
fn blend(dst: u8, src: u8, alpha: f32) -> u8 {
    let v = dst as f32 + (src as f32 - dst as f32) * alpha.min(1.0);
    // `v.round()` is a libm call per channel of every overlay pixel; for 0.5 <= v <= 255 adding
    // 0.5 is exact in f32 and the truncating cast rounds the same way (half away from zero).
    if v < 0.5 {
        0
    } else {
        (v + 0.5) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blending_rounds_half_away_from_zero_like_f32_round() {
        for dst in 0..=255u8 {
            for src in [0u8, 1, 7, 128, 200, 254, 255] {
                for alpha in [0.0f32, 1e-7, 0.1, 0.35, 0.5, 0.55, 0.999_999, 1.0, 1.5] {
                    let exact = (dst as f32 + (src as f32 - dst as f32) * alpha.min(1.0)).round();
                    assert_eq!(blend(dst, src, alpha), exact as u8, "{dst} {src} {alpha}");
                }
            }
        }
    }

    #[test]
    fn luma_of_packed_and_planar_formats() {
        // 2x1 frame with a stride of 8 bytes.
        let rgb = [255, 255, 255, 0, 0, 0, 9, 9];
        assert_eq!(
            extract_luma(PixelFormat::Rgb, 2, 1, &[(&rgb, 8)], true),
            vec![255, 0]
        );
        let bgrx = [0, 0, 255, 0, 255, 0, 0, 0];
        assert_eq!(
            extract_luma(PixelFormat::Bgrx, 2, 1, &[(&bgrx, 8)], true),
            vec![76, 28]
        );
        let gray16 = [0x34, 0x12, 0xff, 0xab];
        assert_eq!(
            extract_luma(PixelFormat::Gray16Le, 2, 1, &[(&gray16, 4)], true),
            vec![0x12, 0xab]
        );
        let y_plane = [1, 2, 3, 0, 4, 5, 6, 0];
        assert_eq!(
            extract_luma(PixelFormat::I420, 3, 2, &[(&y_plane, 4)], true),
            vec![1, 2, 3, 4, 5, 6]
        );
    }

    const ALL_FORMATS: [PixelFormat; 10] = [
        PixelFormat::Gray8,
        PixelFormat::Gray16Le,
        PixelFormat::Rgb,
        PixelFormat::Bgr,
        PixelFormat::Rgba,
        PixelFormat::Bgra,
        PixelFormat::Rgbx,
        PixelFormat::Bgrx,
        PixelFormat::I420,
        PixelFormat::Nv12,
    ];

    /// Pseudo-random bytes (xorshift).
    fn noise(seed: u64, n: usize) -> Vec<u8> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    /// The planes of a `w` x `h` frame in `format`, random bytes, rows padded by 5 bytes.
    fn random_planes(format: PixelFormat, w: usize, h: usize, seed: u64) -> Vec<(Vec<u8>, usize)> {
        (0..format.n_planes())
            .map(|plane| {
                let (row, rows) = format.plane_size(plane, w, h);
                let stride = row + 5;
                (noise(seed + plane as u64, stride * rows), stride)
            })
            .collect()
    }

    #[test]
    fn luma_of_every_format_matches_the_per_pixel_formula() {
        for format in ALL_FORMATS {
            // 721x364 is past PARALLEL_LUMA_PIXELS: the rows are split across threads.
            for (w, h) in [(1, 1), (7, 3), (33, 9), (721, 364)] {
                let planes = random_planes(format, w, h, 7);
                let (data, stride) = (&planes[0].0, planes[0].1);
                // Pixel by pixel, as the luma was read before it had a loop per layout.
                let expected: Vec<u8> = (0..w * h)
                    .map(|i| {
                        let row = &data[(i / w) * stride..];
                        let x = i % w;
                        match (format, format.rgb_layout()) {
                            (_, Some(([r, g, b], px))) => {
                                let p = &row[x * px..];
                                ((77 * p[r] as u32 + 150 * p[g] as u32 + 29 * p[b] as u32) >> 8)
                                    as u8
                            }
                            (PixelFormat::Gray16Le, None) => row[2 * x + 1],
                            _ => row[x],
                        }
                    })
                    .collect();
                let planes: Vec<(&[u8], usize)> =
                    planes.iter().map(|(d, s)| (&d[..], *s)).collect();
                assert_eq!(
                    extract_luma(format, w, h, &planes, true),
                    expected,
                    "{format:?} {w}x{h}"
                );
            }
        }
    }

    /// A frame large enough to be split over rayon's pool gives the same luma on one thread.
    #[test]
    fn luma_is_the_same_split_across_threads_or_not() {
        let (w, h) = (640, 480);
        assert!(w * h >= PARALLEL_LUMA_PIXELS);
        let stride = 4 * w + 12;
        let data: Vec<u8> = (0..stride * h)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8)
            .collect();
        let planes = [(&data[..], stride)];
        let split = extract_luma(PixelFormat::Bgrx, w, h, &planes, true);
        let single = extract_luma(PixelFormat::Bgrx, w, h, &planes, false);
        assert_eq!(split, single);
        let expected_last = {
            let p = &data[(h - 1) * stride + 4 * (w - 1)..];
            ((77 * p[2] as u32 + 150 * p[1] as u32 + 29 * p[0] as u32) >> 8) as u8
        };
        assert_eq!(single[w * h - 1], expected_last);
    }

    /// The formula test above runs the converter this CPU gets; this one holds the portable
    /// row to the same bytes.
    #[test]
    fn portable_luma_rows_equal_the_dispatched_ones() {
        let row: Vec<u8> = (0..4 * 1001u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let (mut portable, mut dispatched) = (vec![0u8; 1001], vec![0u8; 1001]);
        luma_row::<4, 2, 0>(&row, &mut portable);
        luma_converter::<4, 2, 0>()(&row, &mut dispatched);
        assert_eq!(portable, dispatched);
        luma_row::<3, 0, 2>(&row, &mut portable);
        luma_converter::<3, 0, 2>()(&row, &mut dispatched);
        assert_eq!(portable, dispatched);
    }

    #[test]
    fn spans_equal_blending_each_pixel() {
        let (w, h) = (13, 6);
        let spans = [
            (0, 0, 13),
            (1, 3, 9),
            (2, -4, 5),
            (3, 8, 40),
            (5, 4, 5),
            (4, 6, 6),
            (4, 5, 12),
        ];
        for format in ALL_FORMATS {
            for with_alpha in [false, true] {
                for (rgb, alpha) in [
                    ([40, 120, 255], 0.35),
                    ([255, 50, 50], 1.0),
                    ([0, 0, 0], 0.55),
                    ([200, 60, 220], 1.5),
                    ([1, 2, 3], 0.0),
                    ([250, 140, 30], 1e-3),
                ] {
                    let planes = random_planes(format, w, h, 11);
                    let mut by_pixel = planes.clone();
                    let mut by_span = planes;
                    let canvas_of = |planes: &mut Vec<(Vec<u8>, usize)>, spans_at_once: bool| {
                        let mut views: Vec<(&mut [u8], usize)> =
                            planes.iter_mut().map(|(d, s)| (&mut d[..], *s)).collect();
                        let mut canvas = Canvas::new(format, w, h, &mut views);
                        if with_alpha {
                            canvas = canvas.with_alpha();
                        }
                        let paint = canvas.paint(rgb, alpha);
                        for &(y, x0, x1) in &spans {
                            if spans_at_once {
                                canvas.fill_span(y, x0, x1, &paint);
                            } else {
                                for x in x0..x1 {
                                    canvas.blend(x, y, rgb, alpha);
                                }
                            }
                        }
                    };
                    canvas_of(&mut by_pixel, false);
                    canvas_of(&mut by_span, true);
                    assert_eq!(
                        by_span, by_pixel,
                        "{format:?} alpha channel {with_alpha} {rgb:?} at {alpha}"
                    );
                }
            }
        }
    }

    #[test]
    fn layouts_that_do_not_hold_the_frame_are_refused() {
        use PixelFormat::*;
        // 5x3 I420: Y rows of 5 bytes, chroma 3x2.
        assert!(I420
            .check_layout(5, 3, &[(8 * 2 + 5, 8), (3 * 2, 3), (4 + 3, 4)])
            .is_ok());
        assert!(
            I420.check_layout(5, 3, &[(21, 8), (6, 3)]).is_err(),
            "a plane missing"
        );
        assert!(
            I420.check_layout(5, 3, &[(21, 4), (6, 3), (7, 4)]).is_err(),
            "stride < row"
        );
        assert!(
            I420.check_layout(5, 3, &[(20, 8), (6, 3), (7, 4)]).is_err(),
            "plane short"
        );
        assert!(
            Nv12.check_layout(5, 3, &[(15, 5), (11, 5)]).is_err(),
            "interleaved chroma 6 bytes"
        );
        assert!(Nv12.check_layout(5, 3, &[(15, 5), (12, 6)]).is_ok());
        assert!(Rgb.check_layout(2, 1, &[(6, -6)]).is_err(), "bottom-up");
        assert!(Gray16Le.check_layout(2, 2, &[(4 + 4, 4)]).is_ok());
        assert!(Bgrx.check_layout(2, 2, &[(8 + 7, 8)]).is_err());
    }

    #[test]
    fn model_input_resizes_and_normalises() {
        let mut input = ModelInput::new(4, 4);
        let out = input.prepare(&[255u8; 64], 8, 8);
        assert_eq!(out.len(), 16);
        assert!(out.iter().all(|&v| (v - 1.0).abs() < 1e-6));
    }
}
