#version 150 compatibility
// Gaussian splat, geometry stage: covers the pixels the fragment stage can keep (centres in the
// ellipse d^T cov^-1 d <= k^2) with square GL points, which llvmpipe rasterises as one primitive
// each with no blocks visited outside the square:
//
// * most splats: one point, the square around the ellipse's bounding box;
// * large or elongated ones: rows of pixel-aligned square tiles following the ellipse, when that
//   is cheaper (fewer pixels + a per-primitive cost) or the box exceeds the largest point size.
//   Tiles never overlap (pixel-aligned edges), so no pixel gets a splat twice.
//
// Pixel coordinates: origin at the top-left corner of the framebuffer, y down. The viewport is
// the drawn band (`u_clip`) grown by a margin of half the largest point size on each side, so
// that no point is clipped away for having its centre outside the band. Off-band splats emit
// nothing.

layout(points) in;
layout(points, max_vertices = 64) out;  // MAX_TILES in viewer.py

uniform vec4 u_clip;        // band to cover: x0, y0, x1, y1 (whole pixels, y down)
uniform vec4 u_ndc;         // pixel -> NDC: ndc = pixel * u_ndc.xy + u_ndc.zw
uniform float u_fb_height;  // framebuffer height: gl_FragCoord has y up
uniform float u_max_point;  // largest point size used (an integer, at most the GL limit)
uniform float u_single_below;  // squares up to this side are always drawn as one point

in vec4 g_color[];
in vec2 g_center[];
in vec3 g_cov[];
in float g_k[];

flat out vec4 v_color;
flat out vec3 v_center;     // projected centre in window coordinates (y up, like gl_FragCoord), q cut
flat out vec3 v_conic;      // q(d) = -1/2 log2(e) d^T cov^-1 d = (x d.x + y d.y) d.x + z d.y^2 (window y)

const int MAX_TILES = 64;
const float PRIMITIVE_COST = 64.0;  // llvmpipe's cost of one more point, in pixels filled

// the splat being covered
vec2 s_center;  // centre (pixels, y down)
vec3 s_cov;     // covariance a, b, c
float s_kk;     // k^2 (slightly enlarged against rounding)
float s_det;
float s_qcut;   // fragments with q below this are cut: -1/2 log2(e) k^2

const float HALF_LOG2E = 0.72134752044448170;

void emit(vec2 pixel, float size) {
    vec3 s = s_cov;
    v_color = g_color[0];
    v_center = vec3(s_center.x, u_fb_height - s_center.y, s_qcut);
    // -1/2 log2(e) times the inverse of [[a, b], [b, c]], b negated as y flips, 2 b folded in
    v_conic = (-HALF_LOG2E / s_det) * vec3(s.z, 2.0 * s.y, s.x);
    gl_Position = vec4(pixel * u_ndc.xy + u_ndc.zw, 0.0, 1.0);
    gl_PointSize = size;
    EmitVertex();
    EndPrimitive();
}

// Whole-pixel columns [x0, x1) whose centres can be in the ellipse, for pixel rows whose centres
// are y0..y1 (relative to the centre, within +-hy), clipped to the band.
vec2 row_columns(float y0, float y1) {
    float a = s_cov.x, b = s_cov.y, c = s_cov.z;
    float ym = b * sqrt(s_kk / a);  // where the ellipse reaches its extreme x = +-hx
    float hx = sqrt(s_kk * a);
    float w0 = sqrt(max(s_det * (s_kk * c - y0 * y0), 0.0));
    float w1 = sqrt(max(s_det * (s_kk * c - y1 * y1), 0.0));
    float right = (y0 <= ym && ym <= y1) ? hx : max(b * y0 + w0, b * y1 + w1) / c;
    float left = (y0 <= -ym && -ym <= y1) ? -hx : min(b * y0 - w0, b * y1 - w1) / c;
    float x0 = max(ceil(s_center.x + left - 0.5 - 1e-3), u_clip.x);
    float x1 = min(floor(s_center.x + right - 0.5 + 1e-3) + 1.0, u_clip.z);
    return vec2(x0, x1);
}

// Rows of tiles of side `size` from pixel row `top` to `bottom` (exclusive): the number of tiles,
// or the emitted tiles.
int tiles(float size, float top, float bottom, bool draw) {
    float hy = sqrt(s_kk * s_cov.z);
    int count = 0;
    for (float row = top; row < bottom; row += size) {
        float y0 = max(row + 0.5 - s_center.y, -hy);
        float y1 = min(min(row + size, bottom) - 0.5 - s_center.y, hy);
        if (y0 > y1) {
            continue;
        }
        vec2 cols = row_columns(y0, y1);
        for (float x = cols.x; x < cols.y; x += size) {
            if (draw && count < MAX_TILES) {
                emit(vec2(x, row) + 0.5 * size, size);
            }
            count += 1;
        }
    }
    return count;
}

void main() {
    float k = g_k[0];
    if (k <= 0.0) {
        return;
    }
    s_center = g_center[0];
    s_cov = g_cov[0];
    s_det = s_cov.x * s_cov.z - s_cov.y * s_cov.y;
    s_kk = k * k * 1.0002 + 1e-6;
    s_qcut = -HALF_LOG2E * k * k;
    vec2 half_box = sqrt(s_kk * s_cov.xz);
    vec2 lo = max(s_center - half_box, u_clip.xy);
    vec2 hi = min(s_center + half_box, u_clip.zw);
    if (any(greaterThanEqual(lo, hi))) {
        return;  // entirely outside the band
    }
    // one square of side 2 max(half box) holds every pixel centre the fragment stage can keep
    float side = 2.0 * max(half_box.x, half_box.y) + 0.01;
    bool fits = side <= u_max_point - 1.0;
    if (fits && side <= u_single_below) {
        emit(s_center, max(side, 1.0));
        return;
    }
    // pixel rows whose centres are within +-hy of the centre's, in the band
    float top = max(ceil(s_center.y - half_box.y - 0.5 - 1e-3), u_clip.y);
    float bottom = min(floor(s_center.y + half_box.y - 0.5 + 1e-3) + 1.0, u_clip.w);
    // rows of tiles of 8, 16, 32... pixels: the cheapest cover, counting pixels plus a cost per point
    float best_size = 0.0;
    float best_cost = fits ? side * side + PRIMITIVE_COST : 1e30;
    for (float size = 8.0; size < 2.0 * u_max_point; size *= 2.0) {
        size = min(size, u_max_point);
        if (fits && size >= side) {
            break;
        }
        int n = tiles(size, top, bottom, false);
        float cost = float(n) * (size * size + PRIMITIVE_COST);
        if (n <= MAX_TILES && cost < best_cost) {
            best_cost = cost;
            best_size = size;
        }
        if (size >= u_max_point) {
            break;
        }
    }
    if (best_size == 0.0) {
        if (fits) {
            emit(s_center, side);
        } else {
            tiles(u_max_point, top, bottom, true);  // bands are small enough for MAX_TILES of these
        }
        return;
    }
    tiles(best_size, top, bottom, true);
}
