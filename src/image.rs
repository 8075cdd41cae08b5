//! Reading and writing pictures: RGB as planar f32 (3, H, W) in [-1, 1].

use crate::error::{Error, Result};
use image::{
    DynamicImage, ImageDecoder, ImageEncoder, ImageError, ImageFormat, ImageReader, Limits,
    metadata::Orientation,
};
use ndarray::{Array2, Array3, ArrayView2, Axis, s};
use std::io::Cursor;
use std::path::Path;

/// How to write a picture (the format comes from the file extension).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SaveOptions {
    /// JPEG quality 1..=100.
    pub jpeg_quality: u8,
    /// 16 bits per channel (PNG and TIFF only).
    pub sixteen_bit: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            jpeg_quality: 95,
            sixteen_bit: false,
        }
    }
}

/// Largest side a loaded picture may have, in pixels.
pub const MAX_SIDE: u32 = 32_768;
/// Most pixels a loaded picture may have (64 Mpx: 768 MiB once it is planar f32 RGB).
pub const MAX_PIXELS: u64 = 1 << 26;
/// The largest picture file read (the decoder's own allocation bound; no supported format
/// compresses so badly that an acceptable picture needs a larger file).
const MAX_PICTURE_FILE: u64 = MAX_DECODER_ALLOC;
/// Most bytes the decoder may allocate (the decoded buffer included); a decompression bomb
/// (a tiny file that claims a huge picture) is refused before anything big is allocated.
const MAX_DECODER_ALLOC: u64 = 1 << 30;

/// Loads any supported picture (JPEG, including CMYK/YCCK; PNG 8/16-bit; TIFF; WebP) as RGB
/// (3, H, W) in [-1, 1], with its EXIF orientation applied.
///
/// Values map linearly: v/255·2−1 for 8-bit samples, v/65535·2−1 for 16-bit ones (float TIFF
/// samples are taken as [0, 1] and clamped). Grayscale is replicated to the three channels.
/// A picture with an alpha channel (gray+alpha, RGBA) is composited over white:
/// c' = c·a + (1 − a) in [0, 1] units, so fully transparent pixels become white. Colour
/// profiles are not applied (samples are taken as sRGB).
///
/// Errors are one line naming the file: missing or unreadable file, unknown format,
/// corrupt or truncated data, a zero-sized picture, or one larger than [`MAX_SIDE`] per side
/// or [`MAX_PIXELS`] in all.
pub fn load_rgb(path: &Path) -> Result<Array3<f32>> {
    let err = |msg: String| Error::at(path, one_line(&msg));
    if path.is_dir() {
        return Err(err("is a directory, not a picture".into()));
    }
    // The whole file is read up front (the JPEG decoder would do so anyway) so that its
    // framing can be checked before decoding.
    let bytes = crate::io::read_regular_file(path, MAX_PICTURE_FILE)?;
    if bytes.is_empty() {
        return Err(err("empty file, not a picture".into()));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes.as_slice()));
    if let Ok(f) = ImageFormat::from_path(path) {
        reader.set_format(f);
    }
    // The content decides; the extension is only a fallback.
    let reader = reader
        .with_guessed_format()
        .map_err(|e| err(format!("cannot read: {e}")))?;
    let format = reader
        .format()
        .ok_or_else(|| err("not a picture in a supported format (JPEG, PNG, TIFF, WebP)".into()))?;
    // Recognised but not built in (GIF, BMP, …): say so by name rather than let the decoder
    // fail with a generic message.
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Tiff | ImageFormat::WebP
    ) {
        return Err(err(format!(
            "{} pictures are not supported (use JPEG, PNG, TIFF or WebP)",
            format_name(format)
        )));
    }
    // The JPEG decoder fills a cut-off picture with gray instead of failing, so a truncated
    // file is caught here.
    if format == ImageFormat::Jpeg && jpeg_is_truncated(&bytes) {
        return Err(err(
            "truncated JPEG file (it ends before its end-of-image marker)".into(),
        ));
    }
    let mut reader = reader;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODER_ALLOC);
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| err(describe(format, e)))?;

    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(err(format!("empty picture ({w}x{h} pixels)")));
    }
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(err(format!(
            "picture too large ({w}x{h} pixels; at most {MAX_PIXELS} pixels are loaded)"
        )));
    }
    if decoder.total_bytes() > MAX_DECODER_ALLOC {
        return Err(err(format!(
            "picture too large ({w}x{h} pixels, {} bytes decoded)",
            decoder.total_bytes()
        )));
    }
    // A damaged EXIF block should not make an otherwise fine picture unreadable.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| err(describe(format, e)))?;
    img.apply_orientation(orientation);
    Ok(to_planar(&img))
}

/// Walks the JPEG marker structure (segments, then entropy-coded data after each SOS) and
/// tells whether the file ends before its EOI marker. Anything after EOI is ignored; a
/// structure it cannot follow is left to the decoder to judge.
fn jpeg_is_truncated(b: &[u8]) -> bool {
    if b.len() < 2 || b[0] != 0xFF || b[1] != 0xD8 {
        return false;
    }
    let mut i = 2;
    loop {
        if i >= b.len() {
            return true;
        }
        if b[i] != 0xFF {
            return false; // not a marker where one should be: not ours to judge
        }
        // Skip fill bytes (any number of 0xFF before the marker code).
        while i < b.len() && b[i] == 0xFF {
            i += 1;
        }
        let Some(&m) = b.get(i) else { return true };
        i += 1;
        match m {
            0xD9 => return false,
            0x01 | 0xD0..=0xD7 => continue, // markers without a length
            _ => {}
        }
        let Some(len) = b
            .get(i..i + 2)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        else {
            return true;
        };
        i += len;
        if i > b.len() {
            return true;
        }
        if m == 0xDA {
            // Entropy-coded data: 0xFF is followed by 0x00 (stuffing) or a restart marker,
            // until the next real marker.
            loop {
                match (b.get(i), b.get(i + 1)) {
                    (Some(0xFF), Some(&n)) if n != 0x00 && !(0xD0..=0xD7).contains(&n) => break,
                    (Some(_), Some(_)) => i += 1,
                    _ => return true,
                }
            }
        }
    }
}

/// Turns a decoding error into a short message for the user.
fn describe(format: ImageFormat, e: ImageError) -> String {
    let name = format_name(format);
    match e {
        ImageError::Limits(l) => format!("picture too large for the decoder's limits ({l})"),
        ImageError::Unsupported(u) => format!("unsupported {name} picture: {u}"),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("truncated {name} file")
        }
        ImageError::IoError(io) => format!("cannot read: {io}"),
        ImageError::Decoding(d) => format!("corrupt or truncated {name} file: {d}"),
        other => format!("cannot decode {name} file: {other}"),
    }
}

fn format_name(format: ImageFormat) -> String {
    match format {
        ImageFormat::Jpeg => "JPEG".into(),
        ImageFormat::Png => "PNG".into(),
        ImageFormat::Tiff => "TIFF".into(),
        ImageFormat::WebP => "WebP".into(),
        // GIF, BMP, …: the first extension, in capitals.
        f => f
            .extensions_str()
            .first()
            .map_or_else(|| format!("{f:?}"), |e| e.to_ascii_uppercase()),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decoded picture -> planar RGB in [-1, 1], compositing any alpha over white.
fn to_planar(img: &DynamicImage) -> Array3<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = Array3::<f32>::zeros((3, h, w));
    let has_alpha = img.color().has_alpha();
    // Samples as [0, 1] values, one pixel (r, g, b, a) at a time.
    let mut put = |i: usize, px: [f32; 4]| {
        let (y, x) = (i / w, i % w);
        for c in 0..3 {
            // Without alpha a = 1 exactly, so the value stays v/max untouched.
            let v = if has_alpha {
                px[c] * px[3] + (1.0 - px[3])
            } else {
                px[c]
            };
            out[[c, y, x]] = v * 2.0 - 1.0;
        }
    };
    let bits = img.color().bits_per_pixel() / u16::from(img.color().channel_count());
    match bits {
        8 => {
            let buf = img.to_rgba8();
            for (i, p) in buf.pixels().enumerate() {
                put(i, p.0.map(|v| f32::from(v) / 255.0));
            }
        }
        16 => {
            let buf = img.to_rgba16();
            for (i, p) in buf.pixels().enumerate() {
                put(i, p.0.map(|v| f32::from(v) / 65535.0));
            }
        }
        _ => {
            let buf = img.to_rgba32f();
            for (i, p) in buf.pixels().enumerate() {
                put(
                    i,
                    p.0.map(|v| if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) }),
                );
            }
        }
    }
    out
}

/// Writes (3, H, W) values in [-1, 1] (clamped), atomically, in the format of the extension.
///
/// Extensions: `png`, `jpg`/`jpeg`, `tif`/`tiff` (case-insensitive); 16 bits per channel for
/// PNG and TIFF when `opts.sixteen_bit`, an error for JPEG. A value v becomes
/// round((v + 1)/2 · max) with max = 255 or 65535, rounding half away from zero; NaN becomes 0.
/// The file is written to a temporary file in the same directory and renamed over `path`, so
/// readers never see a partial picture, and on error nothing is left behind.
pub fn save_rgb(path: &Path, img: &Array3<f32>, opts: &SaveOptions) -> Result<()> {
    let (c, h, w) = img.dim();
    if c != 3 {
        return Err(Error::at(
            path,
            format!("cannot save a picture with {c} channels (3 expected)"),
        ));
    }
    if h == 0 || w == 0 {
        return Err(Error::at(
            path,
            format!("cannot save an empty picture ({w}x{h})"),
        ));
    }
    let (wu, hu) = match (u32::try_from(w), u32::try_from(h)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            return Err(Error::at(
                path,
                format!("picture too large to save ({w}x{h})"),
            ));
        }
    };
    let format = output_format(path, opts)?;

    let mut bytes = Cursor::new(Vec::new());
    let encoded = if opts.sixteen_bit {
        let data = interleave(img, 65535.0, |v| v as u16);
        let buf = image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(wu, hu, data)
            .expect("buffer size matches the dimensions");
        DynamicImage::ImageRgb16(buf).write_to(&mut bytes, format)
    } else {
        let data = interleave(img, 255.0, |v| v as u8);
        if format == ImageFormat::Jpeg {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, opts.jpeg_quality)
                .write_image(&data, wu, hu, image::ExtendedColorType::Rgb8)
        } else {
            let buf = image::ImageBuffer::<image::Rgb<u8>, _>::from_raw(wu, hu, data)
                .expect("buffer size matches the dimensions");
            DynamicImage::ImageRgb8(buf).write_to(&mut bytes, format)
        }
    };
    encoded.map_err(|e| {
        Error::at(
            path,
            one_line(&format!("cannot encode {}: {e}", format_name(format))),
        )
    })?;
    crate::io::write_atomic(path, bytes.get_ref())
}

/// The format `save_rgb` writes for `path`, checked against `opts`.
fn output_format(path: &Path, opts: &SaveOptions) -> Result<ImageFormat> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let format = match ext.as_str() {
        "png" => ImageFormat::Png,
        "jpg" | "jpeg" => ImageFormat::Jpeg,
        "tif" | "tiff" => ImageFormat::Tiff,
        _ => {
            return Err(Error::at(
                path,
                format!(
                    "unknown picture extension {:?} (use .png, .jpg, .jpeg, .tif or .tiff)",
                    ext
                ),
            ));
        }
    };
    if format == ImageFormat::Jpeg && opts.sixteen_bit {
        return Err(Error::at(
            path,
            "JPEG cannot hold 16 bits per channel (use .png or .tiff)",
        ));
    }
    if format == ImageFormat::Jpeg && !(1..=100).contains(&opts.jpeg_quality) {
        return Err(Error::at(
            path,
            format!("JPEG quality {} is not in 1..=100", opts.jpeg_quality),
        ));
    }
    Ok(format)
}

/// The one check of an output picture path, made before any work (render, fit's final
/// render), so that what `save_rgb` would refuse after minutes of work is refused at once: the
/// format (extension, 16 bits), a directory or special file (/dev/full) in the way, a name
/// over 255 bytes, a missing or unwritable directory (probed with the very temporary file
/// `save_rgb` writes).
pub fn check_output(path: &Path, opts: &SaveOptions) -> Result<()> {
    output_format(path, opts)?;
    if let Ok(m) = std::fs::metadata(path) {
        if m.is_dir() {
            return Err(Error::at(path, "is a directory, not a picture file"));
        }
        if !m.is_file() {
            return Err(Error::at(
                path,
                "is not a regular file (a device, FIFO or socket); give a file path",
            ));
        }
    }
    let name_len = path.file_name().map_or(0, |n| n.as_encoded_bytes().len());
    if name_len > 255 {
        return Err(Error::at(
            path,
            format!("file name is {name_len} bytes long (at most 255)"),
        ));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::at(path, "its directory does not exist"));
    }
    let probe = crate::io::temp_path(path)?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Error::at(path, format_args!("cannot write there: {e}"))),
    }
}

/// Planar [-1, 1] -> interleaved RGB integers in 0..=max.
fn interleave<T>(img: &Array3<f32>, max: f32, cast: impl Fn(f32) -> T) -> Vec<T> {
    let (_, h, w) = img.dim();
    let mut out = Vec::with_capacity(3 * h * w);
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let v = img[[c, y, x]];
                // f32::round rounds half away from zero; NaN stays NaN and casts to 0.
                let q = ((v.clamp(-1.0, 1.0) + 1.0) * 0.5 * max).round();
                out.push(cast(q));
            }
        }
    }
    out
}

/// Resizes (3, H, W) to (3, new_h, new_w) with PIL's BILINEAR filter (a triangle filter whose
/// support grows with the shrink factor, so shrinking is antialiased), as the official data
/// pipeline does.
///
/// Per axis (PIL ≥ 7): scale = in/out, filter scale s = max(scale, 1), support = s; output
/// sample i is centred at (i + 0.5)·scale in input coordinates, takes the input pixels whose
/// integer range [⌊center − s + 0.5⌋, ⌊center + s + 0.5⌋) lies in the image, weighted by the
/// triangle max(0, 1 − |(j + 0.5 − center)/s|), the weights normalised to sum 1. Horizontal
/// pass first, then vertical, accumulating in f64 (as PIL does for float pictures). An axis
/// whose size does not change is copied unchanged.
pub fn resize_bilinear(img: &Array3<f32>, new_w: usize, new_h: usize) -> Array3<f32> {
    resize_bilinear_window(img, new_w, new_h, 0, 0, new_w, new_h)
}

/// The `win_w`×`win_h` window at (`x0`, `y0`) of [`resize_bilinear`]`(img, new_w, new_h)`,
/// bit for bit, computing only that window (a training crop of a zoomed picture without
/// resizing the whole picture).
pub fn resize_bilinear_window(
    img: &Array3<f32>,
    new_w: usize,
    new_h: usize,
    x0: usize,
    y0: usize,
    win_w: usize,
    win_h: usize,
) -> Array3<f32> {
    let (c, h, w) = img.dim();
    assert!(
        new_w > 0 && new_h > 0 && w > 0 && h > 0,
        "resize_bilinear: empty size ({w}x{h} -> {new_w}x{new_h})"
    );
    assert!(
        win_w > 0 && win_h > 0 && x0 + win_w <= new_w && y0 + win_h <= new_h,
        "resize_bilinear: window {win_w}x{win_h} at ({x0}, {y0}) outside {new_w}x{new_h}"
    );
    let tx = Taps::new(w, new_w);
    let ty = Taps::new(h, new_h);
    // The input rows the window's output rows read.
    let rows = if new_h == h {
        y0..y0 + win_h
    } else {
        let end = (y0..y0 + win_h).map(|i| ty.start[i] + ty.n[i]).max();
        ty.start[y0]..end.expect("non-empty window")
    };
    let mut out = Array3::<f32>::zeros((c, win_h, win_w));
    for (src, mut dst) in img.axis_iter(Axis(0)).zip(out.axis_iter_mut(Axis(0))) {
        let src = src.slice(s![rows.clone(), ..]);
        let horiz = if new_w == w {
            src.slice(s![.., x0..x0 + win_w]).to_owned()
        } else {
            resize_rows(src, &tx, x0..x0 + win_w)
        };
        if new_h == h {
            dst.assign(&horiz);
        } else {
            let dst = dst.as_slice_mut().expect("fresh array");
            resize_cols(horiz.view(), &ty, y0..y0 + win_h, rows.start, dst);
        }
    }
    out
}

/// Precomputed filter taps for one axis: output i reads `n[i]` inputs from `start[i]`, with
/// weights `weights[i * stride ..][..n[i]]`.
struct Taps {
    start: Vec<usize>,
    n: Vec<usize>,
    stride: usize,
    weights: Vec<f64>,
}

impl Taps {
    fn new(in_size: usize, out_size: usize) -> Taps {
        let scale = in_size as f64 / out_size as f64;
        let fscale = scale.max(1.0);
        let support = fscale; // the triangle's support is 1, widened by the shrink factor
        let stride = support.ceil() as usize * 2 + 1;
        let mut taps = Taps {
            start: Vec::with_capacity(out_size),
            n: Vec::with_capacity(out_size),
            stride,
            weights: vec![0.0; stride * out_size],
        };
        for i in 0..out_size {
            let center = (i as f64 + 0.5) * scale;
            // PIL truncates toward zero and then clips at 0; floor then clip is the same.
            let lo = ((center - support + 0.5).floor().max(0.0) as usize).min(in_size - 1);
            let hi = ((center + support + 0.5).floor() as usize)
                .min(in_size)
                .max(lo + 1);
            let ws = &mut taps.weights[i * stride..(i + 1) * stride];
            let mut sum = 0.0;
            for (k, j) in (lo..hi).enumerate() {
                let t = ((j as f64 + 0.5 - center) / fscale).abs();
                let wgt = if t < 1.0 { 1.0 - t } else { 0.0 };
                ws[k] = wgt;
                sum += wgt;
            }
            if sum != 0.0 {
                ws[..hi - lo].iter_mut().for_each(|v| *v /= sum);
            }
            taps.start.push(lo);
            taps.n.push(hi - lo);
        }
        taps
    }

    fn of(&self, i: usize) -> (usize, &[f64]) {
        let n = self.n[i];
        (
            self.start[i],
            &self.weights[i * self.stride..i * self.stride + n],
        )
    }
}

/// Horizontal pass: (H, W) -> (H, cols.len()), the output columns `cols`.
fn resize_rows(src: ArrayView2<f32>, taps: &Taps, cols: std::ops::Range<usize>) -> Array2<f32> {
    let h = src.nrows();
    let mut out = Array2::<f32>::zeros((h, cols.len()));
    for (row, mut orow) in src.outer_iter().zip(out.outer_iter_mut()) {
        let row = row
            .to_slice()
            .map(std::borrow::Cow::Borrowed)
            .unwrap_or_else(|| std::borrow::Cow::Owned(row.to_vec()));
        for (i, o) in cols.clone().zip(orow.iter_mut()) {
            let (s, ws) = taps.of(i);
            let acc: f64 = row[s..s + ws.len()]
                .iter()
                .zip(ws)
                .map(|(&v, &k)| f64::from(v) * k)
                .sum();
            *o = acc as f32;
        }
    }
    out
}

/// Vertical pass: the output rows `rows` into dst, laid out as (rows.len(), W), whole rows at a
/// time; `src` holds the input rows from `first_row` on.
fn resize_cols(
    src: ArrayView2<f32>,
    taps: &Taps,
    rows: std::ops::Range<usize>,
    first_row: usize,
    dst: &mut [f32],
) {
    let w = src.ncols();
    let src = src.as_standard_layout();
    let data = src.as_slice().expect("standard layout");
    let mut acc = vec![0.0f64; w];
    for (i, orow) in rows.zip(dst.chunks_exact_mut(w)) {
        let (s, ws) = taps.of(i);
        let s = s - first_row;
        acc.iter_mut().for_each(|a| *a = 0.0);
        for (k, &wgt) in ws.iter().enumerate() {
            let irow = &data[(s + k) * w..(s + k + 1) * w];
            for (a, &v) in acc.iter_mut().zip(irow) {
                *a += f64::from(v) * wgt;
            }
        }
        for (o, &a) in orow.iter_mut().zip(&acc) {
            *o = a as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() < 1e-6
    }

    fn same(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-15, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn taps_follow_pil_definition() {
        // 4 -> 2: scale 2, support 2. Output 0 is centred at 1.0: pixels 0..3 with triangle
        // weights t(|j + 0.5 - 1| / 2) = 0.75, 0.75, 0.25 (pixel -1 would get 0.25 but is
        // outside the image), normalised by 1.75.
        let t = Taps::new(4, 2);
        let (s, w) = t.of(0);
        assert_eq!(s, 0);
        same(w, &[3.0 / 7.0, 3.0 / 7.0, 1.0 / 7.0]);
        let (s, w) = t.of(1);
        assert_eq!(s, 1);
        same(w, &[1.0 / 7.0, 3.0 / 7.0, 3.0 / 7.0]);
        // 2 -> 4 (enlarging, support 1): centres 0.25, 0.75, 1.25, 1.75.
        let t = Taps::new(2, 4);
        assert_eq!(t.of(0), (0, &[1.0][..]));
        assert_eq!(t.of(1), (0, &[0.75, 0.25][..]));
        assert_eq!(t.of(2), (0, &[0.25, 0.75][..]));
        assert_eq!(t.of(3), (1, &[1.0][..]));
    }

    #[test]
    fn shrink_by_two_hand_values() {
        // One row 4 -> 2 wide, rows unchanged.
        let img = Array3::from_shape_vec((3, 1, 4), (0..12).map(|v| v as f32).collect()).unwrap();
        let out = resize_bilinear(&img, 2, 1);
        assert_eq!(out.dim(), (3, 1, 2));
        for c in 0..3 {
            let b = 4.0 * c as f64;
            let (p0, p1, p2, p3) = (b, b + 1.0, b + 2.0, b + 3.0);
            assert!(close(out[[c, 0, 0]], (3.0 * p0 + 3.0 * p1 + p2) / 7.0));
            assert!(close(out[[c, 0, 1]], (p1 + 3.0 * p2 + 3.0 * p3) / 7.0));
        }
        // The same along the vertical axis.
        let tall = img.clone().into_shape_with_order((3, 4, 1)).unwrap();
        let out_v = resize_bilinear(&tall, 1, 2);
        assert_eq!(out_v.dim(), (3, 2, 1));
        for c in 0..3 {
            assert!(close(out_v[[c, 0, 0]], f64::from(out[[c, 0, 0]])));
            assert!(close(out_v[[c, 1, 0]], f64::from(out[[c, 0, 1]])));
        }
    }

    #[test]
    fn enlarge_hand_values_and_separable() {
        // 2x2 -> 4x4: each axis uses weights [1], [.75,.25], [.25,.75], [1].
        let img = Array3::from_shape_fn((3, 2, 2), |(c, y, x)| (c * 10 + y * 2 + x) as f32);
        let out = resize_bilinear(&img, 4, 4);
        let wts: [(usize, &[f64]); 4] = [
            (0, &[1.0]),
            (0, &[0.75, 0.25]),
            (0, &[0.25, 0.75]),
            (1, &[1.0]),
        ];
        for c in 0..3 {
            for (oy, &(sy, wy)) in wts.iter().enumerate() {
                for (ox, &(sx, wx)) in wts.iter().enumerate() {
                    let mut e = 0.0;
                    for (ky, &a) in wy.iter().enumerate() {
                        for (kx, &b) in wx.iter().enumerate() {
                            e += a * b * f64::from(img[[c, sy + ky, sx + kx]]);
                        }
                    }
                    assert!(close(out[[c, oy, ox]], e), "c{c} y{oy} x{ox}");
                }
            }
        }
    }

    #[test]
    fn a_window_is_the_same_part_of_the_whole_resize() {
        let img = Array3::from_shape_fn((3, 37, 53), |(c, y, x)| {
            ((c * 131 + y * 17 + x * 29) % 97) as f32 / 48.0 - 1.0
        });
        // Shrinks (up to 3x, as training zooms), enlargements and unchanged axes.
        for (nw, nh) in [(18, 13), (53, 20), (20, 37), (53, 37), (80, 41), (35, 60)] {
            let whole = resize_bilinear(&img, nw, nh);
            for (x0, y0, ww, wh) in [
                (0, 0, nw, nh),
                (3, 5, 7, 4),
                (nw - 6, nh - 5, 6, 5),
                (1, 0, 1, nh),
            ] {
                let win = resize_bilinear_window(&img, nw, nh, x0, y0, ww, wh);
                let want = whole.slice(s![.., y0..y0 + wh, x0..x0 + ww]);
                assert_eq!(win, want, "{nw}x{nh} window {ww}x{wh} at ({x0}, {y0})");
            }
        }
    }

    #[test]
    fn identity_when_sizes_equal() {
        let img = Array3::from_shape_fn((3, 5, 7), |(c, y, x)| {
            ((c * 31 + y * 7 + x * 3) % 11) as f32 * 0.1
        });
        assert_eq!(resize_bilinear(&img, 7, 5), img);
    }

    #[test]
    fn constant_stays_constant_and_weights_sum_to_one() {
        for (a, b) in [
            (7, 3),
            (3, 7),
            (100, 33),
            (33, 100),
            (5, 1),
            (1, 5),
            (640, 213),
        ] {
            let t = Taps::new(a, b);
            for i in 0..b {
                let (s, w) = t.of(i);
                assert!(s + w.len() <= a);
                assert!(
                    (w.iter().sum::<f64>() - 1.0).abs() < 1e-12,
                    "{a}->{b} at {i}"
                );
            }
        }
        let img = Array3::from_elem((3, 9, 13), 0.25f32);
        let out = resize_bilinear(&img, 4, 20);
        assert!(out.iter().all(|&v| (v - 0.25).abs() < 1e-6));
    }

    /// Reference values from Pillow 13.0.0: `Image.fromarray(a, "F").resize((w, h), BILINEAR)`
    /// with a[y, x] = ((7x + 13y) mod 10)/10 on a 7x5 float picture.
    #[test]
    fn matches_pillow_float_resize() {
        let img =
            Array3::from_shape_fn((3, 5, 7), |(_, y, x)| ((x * 7 + y * 13) % 10) as f32 / 10.0);
        let cases: [(usize, usize, &[f32]); 4] = [
            (
                3,
                2,
                &[
                    3.350649476e-01,
                    3.946524262e-01,
                    4.779220819e-01,
                    5.389610529e-01,
                    3.449198008e-01,
                    4.058441520e-01,
                ],
            ),
            (
                11,
                9,
                &[
                    0.000000000e+00,
                    3.181818128e-01,
                    6.727272868e-01,
                    4.818181694e-01,
                    2.909090817e-01,
                    1.000000015e-01,
                    5.454545617e-01,
                    7.181818485e-01,
                    5.272727013e-01,
                    3.363636434e-01,
                    2.000000030e-01,
                    1.000000015e-01,
                    2.666666508e-01,
                    4.696969688e-01,
                    4.909090698e-01,
                    3.909090757e-01,
                    2.000000030e-01,
                    4.333333373e-01,
                    5.757576227e-01,
                    5.969696641e-01,
                    4.363636374e-01,
                    3.000000119e-01,
                    2.666666806e-01,
                    1.808080822e-01,
                    1.313131303e-01,
                    5.060606003e-01,
                    5.575757027e-01,
                    3.666666746e-01,
                    2.464646548e-01,
                    3.383838236e-01,
                    7.131313086e-01,
                    6.030303240e-01,
                    4.666666687e-01,
                    4.333333373e-01,
                    2.969697118e-01,
                    1.565656662e-01,
                    3.191919029e-01,
                    4.414141178e-01,
                    5.333333611e-01,
                    3.424242437e-01,
                    3.030302823e-01,
                    4.656565785e-01,
                    5.676767826e-01,
                    6.333333254e-01,
                    6.000000238e-01,
                    4.636363685e-01,
                    2.727272809e-01,
                    8.181818575e-02,
                    2.545454502e-01,
                    6.999999881e-01,
                    5.090909004e-01,
                    3.181818128e-01,
                    1.272727251e-01,
                    4.818181992e-01,
                    8.000000119e-01,
                    7.666666508e-01,
                    6.303030252e-01,
                    4.393939674e-01,
                    2.484848648e-01,
                    2.191919237e-01,
                    3.111110926e-01,
                    4.737373590e-01,
                    4.848484993e-01,
                    2.939394116e-01,
                    3.454545438e-01,
                    4.111111164e-01,
                    8.222221732e-01,
                    7.363636494e-01,
                    6.060606241e-01,
                    4.151515365e-01,
                    2.242424339e-01,
                    3.333333507e-02,
                    4.080808163e-01,
                    5.707070827e-01,
                    4.505050480e-01,
                    2.696969807e-01,
                    1.333333403e-01,
                    4.333333373e-01,
                    5.999999642e-01,
                    7.727273107e-01,
                    5.818182230e-01,
                    3.909091055e-01,
                    2.000000030e-01,
                    2.212121189e-01,
                    3.333333433e-01,
                    5.666666627e-01,
                    4.363636672e-01,
                    3.000000119e-01,
                    2.000000030e-01,
                    5.181818008e-01,
                    8.727272749e-01,
                    6.818181872e-01,
                    4.909090996e-01,
                    3.000000119e-01,
                    1.090909168e-01,
                    1.909090877e-01,
                    6.363636255e-01,
                    5.363636613e-01,
                    4.000000060e-01,
                ],
            ),
            (
                4,
                8,
                &[
                    3.190476000e-01,
                    3.759999871e-01,
                    5.440000296e-01,
                    3.571428657e-01,
                    2.627976239e-01,
                    4.197499752e-01,
                    4.477500319e-01,
                    4.675595462e-01,
                    2.062499970e-01,
                    4.622499943e-01,
                    3.302499950e-01,
                    6.014881134e-01,
                    3.639881015e-01,
                    3.247500062e-01,
                    3.927499950e-01,
                    5.211309791e-01,
                    5.366071463e-01,
                    2.622500062e-01,
                    4.302499890e-01,
                    4.110119045e-01,
                    7.241071463e-01,
                    2.747500241e-01,
                    4.427500069e-01,
                    2.711309791e-01,
                    6.169642806e-01,
                    4.447500408e-01,
                    3.202500045e-01,
                    3.991071582e-01,
                    5.190476179e-01,
                    5.760000348e-01,
                    2.240000069e-01,
                    5.095238090e-01,
                ],
            ),
            (
                7,
                3,
                &[
                    1.285714358e-01,
                    4.000000060e-01,
                    5.285714269e-01,
                    2.285714298e-01,
                    5.000000000e-01,
                    6.285714507e-01,
                    3.285714388e-01,
                    6.000000238e-01,
                    3.000000119e-01,
                    2.222222239e-01,
                    4.777777791e-01,
                    4.000000060e-01,
                    3.222222328e-01,
                    5.777778029e-01,
                    5.000000000e-01,
                    7.714285851e-01,
                    4.714286029e-01,
                    1.714285761e-01,
                    2.999999821e-01,
                    5.714285970e-01,
                    2.714285851e-01,
                ],
            ),
        ];
        for (w, h, want) in cases {
            let out = resize_bilinear(&img, w, h);
            assert_eq!(out.dim(), (3, h, w));
            for c in 0..3 {
                let got = out.index_axis(Axis(0), c);
                for (i, (&g, &e)) in got.iter().zip(want).enumerate() {
                    assert!((g - e).abs() < 1e-6, "{w}x{h} c{c} #{i}: {g} vs {e}");
                }
            }
        }
    }
}
