// Gaussian falloff exp(-1/2 d^T S^-1 d), cut at the 3-sigma ellipse, written as
// premultiplied colour for back-to-front blending with (ONE, ONE_MINUS_SRC_ALPHA).

varying vec4 v_color;
varying vec2 v_offset;
varying vec3 v_conic;

void main() {
    vec2 d = v_offset;
    float m = v_conic.x * d.x * d.x + 2.0 * v_conic.y * d.x * d.y + v_conic.z * d.y * d.y;
    if (m > 9.0) {
        discard;
    }
    float alpha = min(0.99, v_color.a * exp(-0.5 * m));
    if (alpha < 1.0 / 255.0) {
        discard;
    }
    gl_FragColor = vec4(v_color.rgb * alpha, alpha);
}
