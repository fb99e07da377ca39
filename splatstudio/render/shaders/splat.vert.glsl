// Gaussian splat, one instanced quad (or triangle) per splat: EWA projection of the 3D covariance
// to a 2D conic in pixels (with the 0.3 px low-pass of 3DGS), and a quad bounding
// the 3-sigma ellipse along its principal axes (smaller for faint splats).
//
// Camera space is OpenCV-like (x right, y down, z forward); pixel coordinates have
// their origin at the top-left corner of the viewport, y down.

uniform mat4 u_view;        // world -> camera
uniform vec2 u_focal;       // fx, fy (pixels)
uniform vec2 u_principal;   // cx, cy (pixels, from the top-left)
uniform vec2 u_viewport;    // width, height (pixels)
uniform vec2 u_tan_fov;     // tan of the half field of view in x and y
uniform float u_near;       // splats closer than this are culled

attribute vec2 a_corner;    // per vertex, in units of the k-sigma half-axes: a quad (+-1, +-1)
                            // or a triangle around the unit circle
attribute vec3 a_position;  // per splat
attribute vec3 a_cov_a;     // covariance xx, xy, xz
attribute vec3 a_cov_b;     // covariance yy, yz, zz
attribute vec4 a_color;     // rgb, opacity

varying vec4 v_color;
varying vec2 v_offset;      // pixel offset from the projected centre (x right, y down)
varying vec3 v_conic;       // inverse 2D covariance: (a, b, c) of [[a, b], [b, c]]

void cull() {
    gl_Position = vec4(0.0, 0.0, 2.0, 1.0);  // outside the clip volume
    v_color = vec4(0.0);
    v_offset = vec2(0.0);
    v_conic = vec3(0.0);
}

void main() {
    vec3 t = (u_view * vec4(a_position, 1.0)).xyz;
    if (t.z <= u_near || a_color.a < 1.0 / 255.0) {
        cull();
        return;
    }
    vec2 lim = 1.3 * u_tan_fov;
    float txtz = clamp(t.x / t.z, -lim.x, lim.x);
    float tytz = clamp(t.y / t.z, -lim.y, lim.y);
    // Jacobian of the perspective projection (columns), third row zero
    mat3 J = mat3(u_focal.x / t.z, 0.0, 0.0,
                  0.0, u_focal.y / t.z, 0.0,
                  -u_focal.x * txtz / t.z, -u_focal.y * tytz / t.z, 0.0);
    mat3 W = mat3(u_view);
    mat3 Vrk = mat3(a_cov_a.x, a_cov_a.y, a_cov_a.z,
                    a_cov_a.y, a_cov_b.x, a_cov_b.y,
                    a_cov_a.z, a_cov_b.y, a_cov_b.z);
    mat3 T = J * W;
    mat3 cov = T * Vrk * transpose(T);
    float a = cov[0][0] + 0.3;
    float b = cov[0][1];
    float c = cov[1][1] + 0.3;
    float det = a * c - b * b;
    if (det <= 0.0) {
        cull();
        return;
    }
    float mid = 0.5 * (a + c);
    float r = sqrt(max(0.25 * (a - c) * (a - c) + b * b, 0.0));
    float l1 = mid + r;
    float l2 = max(mid - r, 1e-6);
    vec2 e1;
    if (abs(b) > 1e-9 * l1) {
        e1 = normalize(vec2(b, l1 - a));
    } else {
        e1 = (a >= c) ? vec2(1.0, 0.0) : vec2(0.0, 1.0);
    }
    vec2 e2 = vec2(-e1.y, e1.x);
    // beyond k sigma, alpha = opacity exp(-k^2/2) < 1/255 and the fragment would be discarded:
    // a tighter quad for faint splats, never beyond the 3-sigma cut
    float peak = min(a_color.a, 0.99);
    float k = min(3.0, sqrt(2.0 * log(255.0 * peak)));
    vec2 offset = a_corner.x * k * sqrt(l1) * e1 + a_corner.y * k * sqrt(l2) * e2;
    vec2 center = vec2(u_focal.x * t.x / t.z, u_focal.y * t.y / t.z) + u_principal;
    vec2 pixel = center + offset;
    gl_Position = vec4(2.0 * pixel.x / u_viewport.x - 1.0, 1.0 - 2.0 * pixel.y / u_viewport.y, 0.0, 1.0);
    v_offset = offset;
    v_conic = vec3(c, -b, a) / det;
    v_color = a_color;
}
