//! Connected components (4-connectivity) of equal non-zero labels, found on runs.
//!
//! A label map at frame size (1080p: two million pixels) is mostly background with a few large
//! vessels, so the components are found on horizontal runs of one label rather than pixel by
//! pixel: a row is scanned once, each run is joined (union–find) with the runs of the row above
//! that it touches, and every later pass (areas, boxes, filling) walks runs, not pixels.

use super::{run_end, LabelMap};

/// A horizontal run of one label: row `y`, columns `x0..x1` (end exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub y: u32,
    pub x0: u32,
    pub x1: u32,
    /// Index of the run's component in [`Components::components`].
    pub component: u32,
}

impl Run {
    pub fn len(&self) -> u64 {
        u64::from(self.x1 - self.x0)
    }

    pub fn is_empty(&self) -> bool {
        self.x1 == self.x0
    }

    /// The run's pixels as a range of indices into a row-major map `width` wide.
    pub fn pixels(&self, width: usize) -> std::ops::Range<usize> {
        let row = self.y as usize * width;
        row + self.x0 as usize..row + self.x1 as usize
    }
}

/// One connected component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Component {
    pub label: u8,
    pub area: u64,
    /// Inclusive bounding box: first and last column, first and last row.
    pub x0: u32,
    pub x1: u32,
    pub y0: u32,
    pub y1: u32,
}

impl Component {
    /// Bounding box as x, y, width, height.
    pub fn bbox(&self) -> (u32, u32, u32, u32) {
        (
            self.x0,
            self.y0,
            self.x1 - self.x0 + 1,
            self.y1 - self.y0 + 1,
        )
    }
}

/// The components of a label map and the runs they are made of (in scan order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Components {
    pub runs: Vec<Run>,
    /// In the scan order of each component's first pixel.
    pub components: Vec<Component>,
}

/// Root of `i` in the union–find forest, halving the path on the way.
fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let grandparent = parent[parent[i as usize] as usize];
        parent[i as usize] = grandparent;
        i = grandparent;
    }
    i
}

/// Connected components of the non-zero pixels of `labels`, two pixels being connected when they
/// share an edge and a label.
pub fn components(labels: &LabelMap) -> Components {
    let w = labels.width;
    let mut runs: Vec<Run> = Vec::new();
    let mut run_labels: Vec<u8> = Vec::new();
    let mut parent: Vec<u32> = Vec::new();
    let mut previous_row = 0..0;
    for (y, row) in labels.data.chunks_exact(w.max(1)).enumerate() {
        let row_start = runs.len();
        // The runs of the row above that may still touch a run of this row (both sorted by x).
        let mut above = previous_row.start;
        let mut x = run_end(row, 0, 0);
        while x < w {
            let label = row[x];
            let x0 = x;
            x = run_end(row, x, label);
            let index = runs.len() as u32;
            runs.push(Run {
                y: y as u32,
                x0: x0 as u32,
                x1: x as u32,
                component: 0,
            });
            run_labels.push(label);
            parent.push(index);
            // Runs above that end at or before this run's start can touch no later run.
            while above < previous_row.end && (runs[above].x1 as usize) <= x0 {
                above += 1;
            }
            let mut k = above;
            while k < previous_row.end && (runs[k].x0 as usize) < x {
                if run_labels[k] == label {
                    let (a, b) = (find(&mut parent, k as u32), find(&mut parent, index));
                    // The older root stays the root, so a component's root is its first run.
                    let (root, child) = (a.min(b), a.max(b));
                    parent[child as usize] = root;
                }
                k += 1;
            }
            x = run_end(row, x, 0);
        }
        previous_row = row_start..runs.len();
    }
    // Number the components in the scan order of their first run.
    let mut number = vec![u32::MAX; runs.len()];
    let mut components: Vec<Component> = Vec::new();
    for i in 0..runs.len() {
        let root = find(&mut parent, i as u32) as usize;
        if number[root] == u32::MAX {
            number[root] = components.len() as u32;
            components.push(Component {
                label: run_labels[i],
                area: 0,
                x0: u32::MAX,
                x1: 0,
                y0: runs[i].y,
                y1: 0,
            });
        }
        let run = &mut runs[i];
        run.component = number[root];
        let c = &mut components[run.component as usize];
        c.area += u64::from(run.x1 - run.x0);
        c.x0 = c.x0.min(run.x0);
        c.x1 = c.x1.max(run.x1 - 1);
        c.y1 = run.y;
    }
    Components { runs, components }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Component index per pixel (u32::MAX for background), from the runs.
    fn painted(labels: &LabelMap, found: &Components) -> Vec<u32> {
        let mut ids = vec![u32::MAX; labels.data.len()];
        for run in &found.runs {
            ids[run.pixels(labels.width)].fill(run.component);
        }
        ids
    }

    /// Pixel-by-pixel flood fill: what the run-based search must reproduce.
    fn flood_fill(labels: &LabelMap) -> (Vec<u32>, Vec<Component>) {
        let (w, h) = (labels.width, labels.height);
        let mut ids = vec![u32::MAX; w * h];
        let mut found = Vec::new();
        for start in 0..w * h {
            let label = labels.data[start];
            if label == 0 || ids[start] != u32::MAX {
                continue;
            }
            let id = found.len() as u32;
            let mut c = Component {
                label,
                area: 0,
                x0: u32::MAX,
                x1: 0,
                y0: u32::MAX,
                y1: 0,
            };
            ids[start] = id;
            let mut stack = vec![start];
            while let Some(i) = stack.pop() {
                let (x, y) = ((i % w) as u32, (i / w) as u32);
                c.area += 1;
                (c.x0, c.x1, c.y0, c.y1) = (c.x0.min(x), c.x1.max(x), c.y0.min(y), c.y1.max(y));
                let (x, y) = (i % w, i / w);
                let neighbours = [
                    (x > 0).then(|| i - 1),
                    (x + 1 < w).then(|| i + 1),
                    (y > 0).then(|| i - w),
                    (y + 1 < h).then(|| i + w),
                ];
                for n in neighbours.into_iter().flatten() {
                    if ids[n] == u32::MAX && labels.data[n] == label {
                        ids[n] = id;
                        stack.push(n);
                    }
                }
            }
            found.push(c);
        }
        (ids, found)
    }

    #[test]
    fn runs_join_across_rows_only_when_they_share_an_edge_and_a_label() {
        // A U joined only at the bottom, a diagonal neighbour (not connected), and two labels
        // side by side (not connected).
        let m = LabelMap::from_rows(8, &["1.1..2..", "1.1...2.", "111..12.", "........"]);
        let found = components(&m);
        let labels: Vec<u8> = found.components.iter().map(|c| c.label).collect();
        assert_eq!(labels, vec![1, 2, 2, 1]);
        assert_eq!(found.components[0].area, 7);
        assert_eq!(found.components[0].bbox(), (0, 0, 3, 3));
        assert_eq!(found.components[2].bbox(), (6, 1, 1, 2));
        assert_eq!(painted(&m, &found), flood_fill(&m).0);
    }

    #[test]
    fn a_spiral_merges_late_and_keeps_the_first_pixels_number() {
        // The two arms meet only in the last row; the component that starts first keeps 0.
        let m = LabelMap::from_rows(
            7,
            &[
                "2.1...1", "..1.1.1", "..1.1.1", "..111.1", "..1...1", "1111111",
            ],
        );
        let found = components(&m);
        assert_eq!(found.components.len(), 2);
        assert_eq!(found.components[0].label, 2);
        assert_eq!(found.components[1].area, 21);
        assert_eq!(painted(&m, &found), flood_fill(&m).0);
    }

    #[test]
    fn matches_a_flood_fill_on_random_maps() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for trial in 0..200 {
            let (w, h) = (1 + (next() % 23) as usize, 1 + (next() % 17) as usize);
            // Sparse to dense, two or three labels.
            let density = next() % 100;
            let labels = 1 + (trial % 3) as u64;
            let data = (0..w * h)
                .map(|_| {
                    if next() % 100 < density {
                        1 + (next() % labels) as u8
                    } else {
                        0
                    }
                })
                .collect();
            let m = LabelMap::from_vec(w, h, data).unwrap();
            let found = components(&m);
            let (ids, expected) = flood_fill(&m);
            assert_eq!(found.components, expected, "{w}x{h} trial {trial}");
            assert_eq!(painted(&m, &found), ids, "{w}x{h} trial {trial}");
        }
    }

    #[test]
    fn an_empty_map_has_no_components() {
        assert_eq!(components(&LabelMap::new(5, 3)), Components::default());
        assert_eq!(components(&LabelMap::new(0, 0)), Components::default());
    }
}
