// Full-screen quad showing a texture (the reduced-resolution frame drawn while moving).
attribute vec2 a_corner;    // (+-1, +-1)
varying vec2 v_uv;

void main() {
    gl_Position = vec4(a_corner, 0.0, 1.0);
    v_uv = 0.5 * (a_corner + 1.0);
}
