#version 150 compatibility
// Gaussian splat, vertex stage (one vertex per splat, drawn as GL points in depth order through an
// index buffer): EWA projection of the 3D covariance to a 2D covariance in pixels with the 0.3 px
// low-pass of 3DGS, and the size in sigmas of the region the fragment stage keeps (3 sigma, or
// less for faint splats whose alpha falls below 1/255 sooner).
//
// Camera space is OpenCV-like (x right, y down, z forward); pixel coordinates have their origin
// at the top-left corner of the framebuffer, y down.

uniform mat4 u_view;        // world -> camera
uniform vec2 u_focal;       // fx, fy (pixels)
uniform vec2 u_principal;   // cx, cy (pixels, from the top-left)
uniform vec2 u_tan_fov;     // tan of the half field of view in x and y
uniform float u_near;       // splats closer than this are culled

in vec3 a_position;
in vec3 a_cov_a;            // covariance xx, xy, xz
in vec3 a_cov_b;            // covariance yy, yz, zz
in vec4 a_color;            // rgb, opacity

out vec4 g_color;
out vec2 g_center;          // projected centre (pixels, y down)
out vec3 g_cov;             // 2D covariance (a, b, c) of [[a, b], [b, c]] (pixels, y down), low-pass included
out float g_k;              // the kept region is d^T cov^-1 d <= k^2; k <= 0: nothing to draw

void main() {
    gl_Position = vec4(0.0);
    g_color = a_color;
    g_center = vec2(0.0);
    g_cov = vec3(1.0, 0.0, 1.0);
    g_k = 0.0;
    vec3 t = (u_view * vec4(a_position, 1.0)).xyz;
    if (t.z <= u_near || a_color.a < 1.0 / 255.0) {
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
        return;
    }
    // beyond k sigma, alpha = opacity exp(-k^2/2) < 1/255 (for opacities up to 0.99; above, the
    // 3-sigma cut comes first) and the fragment stage keeps nothing
    float peak = min(a_color.a, 0.99);
    g_k = min(3.0, sqrt(2.0 * log(255.0 * peak)));
    g_center = vec2(u_focal.x * t.x / t.z, u_focal.y * t.y / t.z) + u_principal;
    g_cov = vec3(a, b, c);
}
